-- BACKFILL: a table that exists before pgspout starts, copied by
-- `--snapshot only` and, for reference, by COPY (SELECT * ...) TO STDOUT.
-- Size: psql variable "rows" (default 10,000,000). Same row shape as W1.
-- Vacuumed and analyzed, so both readers find an all-visible table and
-- pg_class.reltuples (the progress estimate) is set.
\if :{?rows} \else \set rows 10000000 \endif
drop table if exists public.bench_backfill;
create table public.bench_backfill (
    id bigserial primary key,
    account_id int not null,
    kind text,
    payload jsonb,
    amount numeric(12,2),
    created_at timestamptz default now()
);
insert into public.bench_backfill (account_id, kind, payload, amount)
select n % 1000, 'kind_' || (n % 7),
       jsonb_build_object('n', n, 'tag', md5(n::text)), n * 1.5
from generate_series(1, :rows) as n;
vacuum (analyze) public.bench_backfill;

-- W1: one huge transaction. Stresses decode + encode throughput and shows
-- whether memory stays bounded however large a transaction is.
-- Size: psql variable "rows" (default 1,000,000 single-row inserts, all in
-- one INSERT ... SELECT, so one transaction).
\if :{?rows} \else \set rows 1000000 \endif
create table if not exists public.bench_events (
    id bigserial primary key,
    account_id int not null,
    kind text,
    payload jsonb,
    amount numeric(12,2),
    created_at timestamptz default now()
);
insert into public.bench_events (account_id, kind, payload, amount)
select n % 1000, 'kind_' || (n % 7),
       jsonb_build_object('n', n, 'tag', md5(n::text)), n * 1.5
from generate_series(1, :rows) as n;

-- W3: wide TOASTed rows (~120 kB each, stored out of line uncompressed),
-- then updates that leave the TOASTed column unchanged, so the server sends
-- it as "unchanged TOAST". Size: "rows" (default 2,000) and "updates"
-- (default 20,000 row updates, done as updates/rows passes over the whole
-- table, one transaction per pass; updates should be a multiple of rows).
\if :{?rows} \else \set rows 2000 \endif
\if :{?updates} \else \set updates 20000 \endif
create table if not exists public.bench_docs (
    id int primary key,
    version int not null default 0,
    title text,
    body text
);
alter table public.bench_docs alter column body set storage external;
insert into public.bench_docs (id, title, body)
select n, 'doc ' || n,
       (select string_agg(md5(n::text || ':' || part::text), '')
        from generate_series(1, 3750) as part)
from generate_series(1, :rows) as n;
select 'update public.bench_docs set version = version + 1'
from generate_series(1, greatest(1, :updates / :rows)) \gexec

-- W2 setup, run before the slots exist: the table and 1,000 seed rows the
-- pgbench script updates. Not part of the measured change stream.
create table if not exists public.bench_oltp (
    id bigserial primary key,
    account_id int not null,
    kind text,
    payload jsonb,
    amount numeric(12,2),
    created_at timestamptz default now()
);
insert into public.bench_oltp (account_id, kind, amount)
select n, 'seed', 0 from generate_series(1, 1000) as n;

-- W5 (before the slots): the table the concurrent sessions insert into,
-- W1's shape plus the session that wrote the row.
create table if not exists public.bench_w5 (
    id bigserial primary key,
    session int not null,
    account_id int not null,
    kind text,
    payload jsonb,
    amount numeric(12,2),
    created_at timestamptz default now()
);

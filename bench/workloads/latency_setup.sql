-- Table for the latency run: a narrow insert-only table, so the measured
-- time is pgspout's pipeline rather than value encoding.
create table if not exists public.bench_latency (
    id bigserial primary key,
    v int not null,
    created_at timestamptz not null default now()
);

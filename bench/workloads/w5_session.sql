-- W5: one of several concurrent sessions, each inserting "rows" rows in one
-- transaction, "chunk" rows per statement so that the sessions' changes
-- interleave in the WAL. After its inserts a session waits for the shared
-- advisory lock 5005, which the harness holds until every session has
-- finished inserting (so all the transactions are open at once and none
-- commits early), then ends with "finish": commit, or rollback for the
-- session whose changes must never be delivered.
-- Variables: session, rows, chunk, finish.
begin;
select format('insert into public.bench_w5 (session, account_id, kind, '
              'payload, amount) '
              'select %s, n %% 1000, ''kind_'' || (n %% 7), '
              'jsonb_build_object(''n'', n, ''tag'', md5(n::text)), '
              'n * 1.5 from generate_series(%s, %s) as n',
              :session, lo, least(lo + :chunk - 1, :rows))
from generate_series(1, :rows, :chunk) as lo \gexec
select pg_advisory_lock_shared(5005);
:finish;

#!/usr/bin/env bash
# The demo: builds and installs pgspout, starts a throwaway PostgreSQL 15 on
# a free loopback port, changes a demo table, and streams those changes to
# stdout as JSON lines. Everything it started is stopped and removed at exit.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# shellcheck source=scripts/pg-server.sh
. scripts/pg-server.sh

say() { printf '\n== %s\n' "$*" >&2; }

# PGSPOUT_DEMO_BIN: an installed pgspout (the Debian package's, say) to
# run instead of building one; PostgreSQL 15 must be installed then.
if [ -n "${PGSPOUT_DEMO_BIN:-}" ]; then
    PGSPOUT=$PGSPOUT_DEMO_BIN
else
    say "installing what the build and the demo need"
    bash scripts/install-build-deps.sh

    say "building pgspout"
    if [ -f build/release/build.ninja ]; then
        meson setup --reconfigure build/release \
            --prefix="$REPO/build/prefix" >&2
    else
        meson setup build/release --prefix="$REPO/build/prefix" >&2
    fi
    meson compile -C build/release >&2
    meson install -C build/release --quiet >&2
    PGSPOUT=$REPO/build/prefix/bin/pgspout
fi

DEMO_DIR=$(mktemp -d /tmp/pgspout-demo.XXXXXX)
cleanup() {
    pg_server_stop "$DEMO_DIR"
    rm -rf "$DEMO_DIR"
}
trap cleanup EXIT

say "starting a throwaway PostgreSQL 15"
pg_server_start 15 "$DEMO_DIR"
CONNINFO="host=127.0.0.1 port=$PG_SERVER_PORT dbname=postgres user=postgres"
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$CONNINFO" -c "$1"; }

sql "create table demo (id int primary key, name text, price numeric(8,2),
     tags text[], updated timestamptz default now())"

say "creating the slot and publication"
"$PGSPOUT" -d "$CONNINFO" --slot demo --create-slot --sink file \
    -o path="$DEMO_DIR/setup.jsonl" --endpos "$(sql 'select pg_current_wal_lsn()')"

say "changing the demo table"
sql "insert into demo (id, name, price, tags) values
     (1, 'espresso', 2.50, '{hot,coffee}'), (2, 'latte', 3.80, '{hot}'),
     (3, 'iced tea', 3.10, '{cold}')"
sql "update demo set price = 2.75 where id = 1"
sql "delete from demo where id = 3"
sql "alter table demo add column size text default 'M'"
sql "insert into demo (id, name, price, size) values (4, 'mocha', 4.20, 'L')"
END_LSN=$(sql "select pg_current_wal_lsn()")

say "streaming the changes up to $END_LSN"
"$PGSPOUT" -d "$CONNINFO" --slot demo --create-slot --sink file -o path=- \
    --endpos "$END_LSN"
say "done"

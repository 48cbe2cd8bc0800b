#!/usr/bin/env bash
# Runs a representative subset of the integration suite with pgspout under
# valgrind memcheck: every pgspout process the tests start is
#   valgrind --error-exitcode=99 --leak-check=full
#            --errors-for-leak-kinds=definite
# through a wrapper script given as PGSPOUT_BIN. Passes when the tests pass
# and no valgrind log reports an error or a definite leak.
#
# Usage: scripts/memcheck.sh BINARY BUILDDIR [pytest args...]
#   BINARY    the installed pgspout (a release build; not the ASan one)
#   BUILDDIR  its meson build directory (for the test sinks)
# Environment: PGSPOUT_TEST_TMPDIR as for the integration suite (default: a
# fresh directory), MEMCHECK_TESTS to replace the default test selection.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -lt 2 ]; then
    echo "usage: $0 BINARY BUILDDIR [pytest args...]" >&2
    exit 2
fi
BINARY=$(realpath "$1")
BUILDDIR=$(realpath "$2")
shift 2
command -v valgrind >/dev/null || {
    echo "memcheck.sh: valgrind is not installed (scripts/install-fuzz.sh)" >&2
    exit 1
}

WORK=$(mktemp -d /tmp/pgspout-memcheck.XXXXXX)
chmod 755 "$WORK"
LOGS=$WORK/logs
mkdir -p "$LOGS"
chmod 777 "$LOGS"
if [ -z "${PGSPOUT_TEST_TMPDIR:-}" ]; then
    export PGSPOUT_TEST_TMPDIR=$WORK/pg
    mkdir -p "$PGSPOUT_TEST_TMPDIR"
    chmod 755 "$PGSPOUT_TEST_TMPDIR"
fi

# libconfig 1.5 leaks scanner buffers when it stops at a syntax error
# (pgspout then exits 2); that memory is not pgspout's.
cat >"$WORK/valgrind.supp" <<'EOF'
{
   libconfig-scanner-syntax-error
   Memcheck:Leak
   match-leak-kinds: definite
   ...
   fun:libconfig_yylex
}
EOF

cat >"$WORK/pgspout" <<EOF
#!/bin/sh
exec valgrind --quiet --error-exitcode=99 --leak-check=full \\
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \\
    --suppressions=$WORK/valgrind.supp --log-file=$LOGS/vg.%p.log \\
    "$BINARY" "\$@"
EOF
chmod 755 "$WORK/pgspout"

# The change paths (insert/update/delete, replica identities, truncate,
# every value type, TOAST, ALTER TABLE mid-stream), the config file with
# several sinks and filters, --list-tables, resume after a clean stop,
# kill -9 recovery, sink RETRY and FATAL, a sample of the bad configs (the
# whole corpus triples the run time and exercises the same code) and every
# bad plugin, and the secrets tests (verbose logging, a network sink).
DEFAULT_TESTS=(
    tests/integration/test_stream_basic.py
    tests/integration/test_types.py
    tests/integration/test_toast_schema.py
    tests/integration/test_filters.py
    tests/integration/test_config.py
    "tests/integration/test_delivery.py::test_resume_after_clean_stop"
    "tests/integration/test_delivery.py::test_kill9_exactly_once"
    "tests/integration/test_sink_faults.py::test_retry_redelivers_the_same_events"
    "tests/integration/test_sink_faults.py::test_fatal_stops_without_confirming"
    "tests/integration/test_bad_inputs.py::test_broken_sink_refused"
    "tests/integration/test_bad_inputs.py::test_bad_config[sinks-empty]"
    "tests/integration/test_bad_inputs.py::test_bad_config[syntax-duplicate-setting]"
    "tests/integration/test_bad_inputs.py::test_bad_config[syntax-binary]"
    "tests/integration/test_bad_inputs.py::test_bad_config[include-bad-content]"
    "tests/integration/test_bad_inputs.py::test_bad_config[include-directory]"
    "tests/integration/test_bad_inputs.py::test_bad_config[pattern-unterminated-bracket]"
    "tests/integration/test_bad_inputs.py::test_bad_config[secret-missing-required]"
    "tests/integration/test_bad_inputs.py::test_bad_config[sink-duplicate-name]"
    "tests/integration/test_bad_inputs.py::test_sink_option_value_is_a_usage_error[webhook-secret0]"
    "tests/integration/test_bad_inputs.py::test_sink_option_value_is_a_usage_error[kafka-kafka.linger.ms]"
    "tests/integration/test_bad_inputs.py::test_sink_option_value_is_a_usage_error[elastic-api_key]"
    tests/integration/test_secrets.py
)
read -r -a TESTS <<<"${MEMCHECK_TESTS:-${DEFAULT_TESTS[*]}}"

cd "$REPO"
PGSPOUT_PG_VERSIONS=15 PGSPOUT_BIN=$WORK/pgspout \
    PGSPOUT_TEST_SINK_DIR=$BUILDDIR/tests/sinks \
    python3 -m pytest -p no:cacheprovider -q -m "not slow" "${TESTS[@]}" \
    "$@" </dev/null
status=$?

runs=$(find "$LOGS" -name 'vg.*.log' | wc -l)
# A log is empty under --quiet unless memcheck found something. kill -9
# leaves no summary, and that is not an error.
bad=0
for log in "$LOGS"/vg.*.log; do
    [ -s "$log" ] || continue
    if grep -qE 'Invalid|uninitialised|definitely lost|Mismatched|overlap|Syscall param' "$log"; then
        echo "memcheck.sh: $log:" >&2
        head -n 60 "$log" >&2
        bad=$((bad + 1))
    fi
done
echo "memcheck: $runs pgspout processes under valgrind, $bad with errors or" \
    "definite leaks; pytest exit $status"
if [ $bad -eq 0 ] && [ $status -eq 0 ]; then
    rm -rf "$WORK"
    exit 0
fi
echo "memcheck.sh: logs kept in $LOGS" >&2
exit 1

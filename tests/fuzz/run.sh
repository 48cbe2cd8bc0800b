#!/usr/bin/env bash
# Replays every seed corpus as a regression test, then fuzzes each target
# for SECONDS (default 20) with libFuzzer. The config target's seeds are
# tests/fuzz/corpus/config (its own: valid files and crash reproducers) and
# the bad-config corpus tests/corpus/bad-config, stored once and read from
# there. Exits non-zero when a target
# crashes, leaks or breaks an invariant; the input that did it is written to
# OUT/crashes/ (copy it into tests/fuzz/corpus/<target>/ as a regression
# seed once fixed).
#
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
#   targets: pgoutput pattern config value_json (default: all)
#   OUT (environment): build and work directory, default /tmp/pgspout-fuzz;
#   new inputs found are kept in OUT/work/<target>, never in the repository.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:-/tmp/pgspout-fuzz}
SECONDS_EACH=${1:-20}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(pgoutput pattern config value_json)

bash "$HERE/build.sh" "$OUT" >/dev/null || exit 1
export LSAN_OPTIONS=suppressions=$HERE/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

failures=0
total=0

# The seed directories of a target.
seeds() {
    echo "$HERE/corpus/$1"
    if [ "$1" = config ]; then
        echo "$HERE/../corpus/bad-config"
    fi
}

# Regression: every seed (crash reproducers included) runs clean, and every
# message captured from a real server decodes.
for t in "${TARGETS[@]}"; do
    mapfile -t dirs < <(seeds "$t")
    if ! "$OUT/replay_$t" "${dirs[@]}" >"$OUT/replay_$t.log" 2>&1; then
        echo "run.sh: replaying corpus/$t failed:" >&2
        tail -n 30 "$OUT/replay_$t.log" >&2
        failures=$((failures + 1))
    fi
done
if [[ " ${TARGETS[*]} " == *" pgoutput "* ]]; then
    if ! PGSPOUT_FUZZ_EXPECT_VALID=1 "$OUT/replay_pgoutput" \
        "$HERE"/corpus/pgoutput/real-* >"$OUT/replay_real.log" 2>&1; then
        echo "run.sh: a captured pgoutput message was refused:" >&2
        tail -n 5 "$OUT/replay_real.log" >&2
        failures=$((failures + 1))
    fi
fi

if [ ! -x "$OUT/fuzz_pgoutput" ]; then
    echo "run.sh: no libFuzzer build (install clang: scripts/install-fuzz.sh);" \
        "only the corpora were replayed" >&2
    exit $((failures > 0))
fi

mkdir -p "$OUT/crashes"
for t in "${TARGETS[@]}"; do
    mkdir -p "$OUT/work/$t"
    log=$OUT/fuzz_$t.log
    mapfile -t dirs < <(seeds "$t")
    "$OUT/fuzz_$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$OUT/crashes/$t-" \
        "$OUT/work/$t" "${dirs[@]}" >"$log" 2>&1
    status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    total=$((total + ${execs:-0}))
    if [ $status -ne 0 ]; then
        echo "fuzz_$t: FAILED (exit $status) after ${execs:-?} executions:" >&2
        grep -E -A 30 '^==[0-9]+==ERROR|runtime error|^SUMMARY' "$log" |
            head -n 60 >&2
        failures=$((failures + 1))
    else
        echo "fuzz_$t: ${execs:-0} executions in ${SECONDS_EACH}s, no failure"
    fi
done
echo "fuzzing: $total executions in total, $failures failing target(s)"
exit $((failures > 0))

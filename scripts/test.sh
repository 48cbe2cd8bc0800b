#!/usr/bin/env bash
# The full test run: installs what is missing, builds (release and
# ASan+UBSan), runs the unit tests and the integration suite against the
# installed binaries, and ends with one line "N passed, N failed".
#
# Knobs (environment): PGSPOUT_PG_VERSIONS (default 15,14,16,17,18),
# PGSPOUT_SKIP_ASAN=1, PGSPOUT_TEST_JOBS (pytest processes per integration
# run, default 2; 1 runs them in one), PYTEST_ADDOPTS (passed through to
# pytest).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

RESULTS=$REPO/build/test-results
TEST_TMP=$(mktemp -d /tmp/pgspout-test.XXXXXX)
chmod 755 "$TEST_TMP"
export PGSPOUT_TEST_TMPDIR=$TEST_TMP

extra_failures=0
extra_passes=0

log() { printf '\n=== %s\n' "$*"; }

# A check that is one command: counted in the summary as one test.
run_check() {
    local name=$1
    shift
    log "check: $name"
    if "$@"; then
        extra_passes=$((extra_passes + 1))
    else
        echo "test.sh: check failed: $name" >&2
        extra_failures=$((extra_failures + 1))
    fi
}

# Servers left behind by a killed pytest are found through their pid files;
# each one is stopped by its own pid.
stop_leftover_servers() {
    local pidfile pid
    while IFS= read -r pidfile; do
        pid=$(head -n 1 "$pidfile" 2>/dev/null) || continue
        [[ $pid =~ ^[0-9]+$ ]] || continue
        if kill -0 "$pid" 2>/dev/null; then
            echo "test.sh: stopping leftover postgres $pid" >&2
            kill -QUIT "$pid" 2>/dev/null
            sleep 1
            kill -KILL "$pid" 2>/dev/null
        fi
    done < <(find "$TEST_TMP" -name postmaster.pid 2>/dev/null)
}

cleanup() {
    [ -z "${asan_build_pid:-}" ] || kill "$asan_build_pid" 2>/dev/null
    stop_leftover_servers
    rm -rf "$TEST_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pick_python() {
    local py
    for py in python3 /usr/bin/python3; do
        if "$py" -m pytest --version >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# meson setup that also works on an already configured directory.
configure() {
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@"
    else
        rm -rf "$dir"
        meson setup "$dir" "$@"
    fi
}

# Builds, unit-tests and installs one configuration; returns non-zero when
# there is nothing to run integration tests against.
build_and_unit_test() {
    local dir=$1
    shift
    log "configure $dir"
    if ! configure "$dir" "$@"; then
        echo "test.sh: meson setup failed for $dir" >&2
        extra_failures=$((extra_failures + 1))
        return 1
    fi
    log "compile $dir"
    if ! meson compile -C "$dir"; then
        echo "test.sh: build failed for $dir" >&2
        extra_failures=$((extra_failures + 1))
        return 1
    fi
    log "unit tests $dir"
    meson test -C "$dir" --print-errorlogs --num-processes 2 ||
        echo "test.sh: unit tests failed in $dir" >&2
    mkdir -p "$RESULTS"
    if [ -f "$dir/meson-logs/testlog.json" ]; then
        cp "$dir/meson-logs/testlog.json" \
            "$RESULTS/unit-$(basename "$dir").json"
    fi
    log "install $dir"
    if ! meson install -C "$dir" --quiet; then
        echo "test.sh: install failed for $dir" >&2
        extra_failures=$((extra_failures + 1))
        return 1
    fi
}

# Most integration tests wait (for servers, outages, timers) far more than
# they compute, so two pytest processes (pytest-xdist) take between half
# and two thirds of one's time on two cores. Each test module stays in one process
# (--dist loadfile): its servers start once, and a module's tests that
# share a server never run at the same time.
pytest_jobs() {
    local jobs=${PGSPOUT_TEST_JOBS:-2}
    if [ "$jobs" -gt 1 ] && "$PYTHON" -c 'import xdist' 2>/dev/null; then
        printf '%s\n' -n "$jobs" --dist loadfile
    fi
}

run_pytest() {
    local name=$1 binary=$2 builddir=$3 jobs
    shift 3
    log "integration tests ($name) against $binary"
    if [ -z "$PYTHON" ]; then
        extra_failures=$((extra_failures + 1))
        return
    fi
    mapfile -t jobs < <(pytest_jobs)
    PGSPOUT_BIN=$binary PGSPOUT_TEST_SINK_DIR=$REPO/$builddir/tests/sinks \
        "$PYTHON" -m pytest tests/integration "${jobs[@]}" \
        -p no:cacheprovider -rfE --junitxml="$RESULTS/pytest-$name.xml" \
        "$@" </dev/null
    local status=$?
    # 5 is "no tests collected": the summary counts that as a failure.
    if [ $status -ne 0 ] && [ $status -ne 1 ]; then
        echo "test.sh: pytest ($name) exited $status" >&2
        extra_failures=$((extra_failures + 1))
    fi
    stop_leftover_servers
}

ASAN_RUN_OPTIONS=detect_leaks=1:abort_on_error=1
UBSAN_RUN_OPTIONS=halt_on_error=1:print_stacktrace=1
asan_build_pid=

ASAN_SETUP=(--prefix="$REPO/build/prefix-asan" -Dwerror=true
    -Db_sanitize=address,undefined -Db_lundef=false)

# The ASan+UBSan build is configured and compiled in the background while
# the release build's integration tests run: they mostly wait for servers,
# so the compilation costs the run little time of its own. Niced, one job
# at a time, so the tests keep the CPU they need. Its unit tests run later,
# in the foreground (under a loaded CPU, ASan's slowdown took one past its
# timeout).
start_asan_build() {
    [ "${PGSPOUT_SKIP_ASAN:-0}" != 1 ] && [ -z "$asan_build_pid" ] || return 0
    log "ASan+UBSan compile started in the background ($RESULTS/asan-build.log)"
    (
        renice -n 15 -p "$BASHPID" >/dev/null
        configure build/asan "${ASAN_SETUP[@]}" &&
            meson compile -C build/asan -j 1
    ) >"$RESULTS/asan-build.log" 2>&1 &
    asan_build_pid=$!
}

# Waits for the background compile (its output goes into this log now),
# then builds what is left, runs the unit tests and installs, as for the
# release build (a failure of the background part shows up there again).
asan_build_finished() {
    wait "$asan_build_pid"
    cat "$RESULTS/asan-build.log"
    build_and_unit_test build/asan "${ASAN_SETUP[@]}"
}

main() {
    rm -rf "$RESULTS"
    mkdir -p "$RESULTS"

    log "install dependencies"
    if ! bash scripts/install-deps.sh; then
        echo "test.sh: install-deps failed" >&2
        extra_failures=$((extra_failures + 1))
    fi
    PYTHON=$(pick_python) || PYTHON=
    [ -n "$PYTHON" ] || echo "test.sh: no python3 with pytest" >&2

    run_check "no function over 120 lines in core/ lib/ plugins/" \
        "${PYTHON:-python3}" tests/check_function_length.py
    run_check "C sources formatted as .clang-format says" \
        bash scripts/check-format.sh
    run_check "the format check refuses a misformatted file" \
        bash scripts/check-format.sh --self-test

    if build_and_unit_test build/release --prefix="$REPO/build/prefix" \
        -Dwerror=true; then
        start_asan_build
        run_pytest release "$REPO/build/prefix/bin/pgspout" build/release
        # The benchmark harness at 1% scale: proves it still runs, measures
        # nothing (no timing is asserted anywhere in CI).
        if [ "${PGSPOUT_SKIP_FUZZ:-0}" != 1 ]; then
            log "fuzzing (10 s per target)"
            bash tests/fuzz/run.sh 10 || extra_failures=$((extra_failures + 1))
        fi
        if [ "${PGSPOUT_SKIP_MEMCHECK:-0}" != 1 ]; then
            log "valgrind memcheck"
            bash scripts/memcheck.sh "$REPO/build/prefix/bin/pgspout" \
                build/release --junitxml="$RESULTS/pytest-memcheck.xml" ||
                extra_failures=$((extra_failures + 1))
            stop_leftover_servers
        fi
        if [ "${PGSPOUT_SKIP_PACKAGE:-0}" != 1 ]; then
            run_check "the Debian packages build, pass lintian, install and run" \
                bash scripts/package-test.sh
        fi
        log "benchmark smoke"
        if ! PGSPOUT_BIN="$REPO/build/prefix/bin/pgspout" bash bench/smoke.sh \
            </dev/null; then
            echo "test.sh: bench smoke failed" >&2
            extra_failures=$((extra_failures + 1))
        fi
    fi

    if [ "${PGSPOUT_SKIP_ASAN:-0}" != 1 ]; then
        start_asan_build # unless the release build failed to start it
        export ASAN_OPTIONS=$ASAN_RUN_OPTIONS
        export UBSAN_OPTIONS=$UBSAN_RUN_OPTIONS
        if asan_build_finished; then
            # The whole suite on one major, fault loops included, with
            # streaming off (protocol 1; the release run above has it on,
            # the default): through tests/pgspout-streaming-off, which
            # leaves tests that set --streaming alone. Left out: the
            # peak-memory assertions (ASan's shadow memory and quarantine
            # make RSS meaningless), the test of the default itself, and
            # the tests that wait out a built-in default time (30 s of a
            # connect timeout: the same path runs with a short one).
            install -m 755 tests/pgspout-streaming-off \
                "$REPO/build/prefix-asan/bin/pgspout-streaming-off"
            PGSPOUT_PG_VERSIONS=15 run_pytest asan \
                "$REPO/build/prefix-asan/bin/pgspout-streaming-off" \
                build/asan \
                -m "not rss and not streaming_default and not waits_out_default"
        fi
        unset ASAN_OPTIONS UBSAN_OPTIONS
    fi

    stop_leftover_servers
    log "summary"
    "${PYTHON:-python3}" - "$RESULTS" "$extra_failures" "$extra_passes" <<'PY'
"""Adds up unit-test checks (each program's "N passed, N failed" line, or
the program itself when it printed none), pytest's junit results and the
script's own checks (run_check)."""
import glob, json, os, re, sys
import xml.etree.ElementTree as ET

results, passed, failed = sys.argv[1], int(sys.argv[3]), int(sys.argv[2])
summary_re = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)
for path in sorted(glob.glob(os.path.join(results, "unit-*.json"))):
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            ok = t.get("result") in ("OK", "EXPECTEDFAIL")
            if t.get("result") == "SKIP":
                continue
            m = summary_re.findall(t.get("stdout") or "")
            if m:
                p, fl = map(int, m[-1])
                passed += p
                failed += fl
                # A crash or sanitizer report after the summary line.
                if not ok and fl == 0:
                    failed += 1
            elif ok:
                passed += 1
            else:
                failed += 1
                print("unit test failed: %s (%s)" % (t.get("name"),
                                                   t.get("result")))
for path in sorted(glob.glob(os.path.join(results, "pytest-*.xml"))):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        print("unreadable %s: %s" % (path, e))
        failed += 1
        continue
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" not in kinds:
            passed += 1
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed or passed == 0 else 0)
PY
}

main
status=$?
exit $status

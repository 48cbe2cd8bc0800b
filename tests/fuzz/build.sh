#!/usr/bin/env bash
# Builds the fuzz targets into OUT (default /tmp/pgspout-fuzz): with clang,
# OUT/fuzz_<target> (libFuzzer + ASan + UBSan); always, with gcc or clang,
# OUT/replay_<target> (the same target under ASan + UBSan with a main that
# replays files, for regression runs without libFuzzer).
#
# The main build uses gcc, which has no libFuzzer, so the targets are built
# here rather than by meson. scripts/install-fuzz.sh installs clang.
#
# Usage: tests/fuzz/build.sh [OUT]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${1:-/tmp/pgspout-fuzz}
mkdir -p "$OUT"

CLANG=
for c in clang-14 clang; do
    if command -v "$c" >/dev/null; then
        CLANG=$c
        break
    fi
done

CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror
    -fno-omit-frame-pointer -I"$REPO/core" -I"$REPO/core/source"
    -I"$REPO/core/delivery" -I"$REPO/lib" -I"$REPO/sdk/include"
    $(pkg-config --cflags libpq libconfig))
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)

# Every target links the whole utility library (lib/), as the daemon does.
UTIL=$(cd "$REPO" && echo lib/*.c)
declare -A SOURCES=(
    [pgoutput]="core/source/pgoutput.c $UTIL"
    [pattern]="core/pattern.c core/regex_cost.c core/error.c $UTIL"
    [config]="core/config.c core/config_cli.c core/config_file.c core/config_load.c core/config_tokens.c core/settings.c core/http_listen.c core/log.c core/conninfo.c core/delivery/options.c core/error.c $UTIL"
    [value_json]="core/value_json.c core/json_out.c core/typeinfo.c $UTIL"
)
declare -A LIBS=(
    [config]="$(pkg-config --libs libpq libconfig)"
)

targets=(pgoutput pattern config value_json)

for t in "${targets[@]}"; do
    srcs=()
    for s in ${SOURCES[$t]}; do
        srcs+=("$REPO/$s")
    done
    libs=(${LIBS[$t]:-})
    if [ -n "$CLANG" ]; then
        "$CLANG" "${CFLAGS[@]}" "${SAN[@]}" -fsanitize=fuzzer \
            "$REPO/tests/fuzz/fuzz_$t.c" "${srcs[@]}" "${libs[@]}" \
            -o "$OUT/fuzz_$t"
    fi
    "${CLANG:-gcc}" "${CFLAGS[@]}" "${SAN[@]}" \
        "$REPO/tests/fuzz/fuzz_$t.c" "$REPO/tests/fuzz/replay_main.c" \
        "${srcs[@]}" "${libs[@]}" -o "$OUT/replay_$t"
done
if [ -z "$CLANG" ]; then
    echo "build.sh: no clang: built only the replay_* programs" \
        "(scripts/install-fuzz.sh installs clang)" >&2
fi
echo "built in $OUT: $(cd "$OUT" && ls fuzz_* replay_* 2>/dev/null | tr '\n' ' ')"

#!/usr/bin/env bash
# Checks C sources against the repository's .clang-format: every tracked
# .c/.h file, or the files given. Prints each file that clang-format would
# change and exits 1 when there is any (exit 2: clang-format is missing).
#
#   bash scripts/check-format.sh            # the whole tree
#   bash scripts/check-format.sh FILE...    # just these
#   bash scripts/check-format.sh --self-test
#
# --self-test proves the check can fail: a copy of a clean file with its
# indentation broken must be refused, the clean file accepted.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

FORMAT=${CLANG_FORMAT:-clang-format}
if ! command -v "$FORMAT" >/dev/null; then
    echo "check-format: $FORMAT not found (apt-get install clang-format)" >&2
    exit 2
fi

# 0 when every file is formatted; names the ones that are not.
check_files() {
    local file bad=0
    for file; do
        if ! "$FORMAT" --style=file:"$REPO/.clang-format" --dry-run \
            --Werror "$file" >/dev/null 2>&1; then
            echo "check-format: $file is not formatted (clang-format -i $file)" >&2
            bad=1
        fi
    done
    return $bad
}

self_test() {
    local dir clean
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' RETURN
    clean=core/checkpoint.c
    cp "$clean" "$dir/clean.c"
    sed 's/^    /  /' "$clean" >"$dir/broken.c"
    check_files "$dir/clean.c" || {
        echo "check-format: self-test: a clean file was refused" >&2
        return 1
    }
    if check_files "$dir/broken.c" 2>/dev/null; then
        echo "check-format: self-test: a misformatted file passed" >&2
        return 1
    fi
}

if [ "${1:-}" = --self-test ]; then
    self_test
    exit $?
fi
if [ $# -gt 0 ]; then
    check_files "$@"
    exit $?
fi
mapfile -t files < <(git ls-files '*.c' '*.h')
check_files "${files[@]}"

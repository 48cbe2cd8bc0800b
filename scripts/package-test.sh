#!/usr/bin/env bash
# The Debian packages, end to end (as root, on Debian 12): builds pgspout
# and libpgspout-dev from the tree with dpkg-buildpackage, checks them with
# lintian (no error allowed), installs them with dpkg -i, then runs the demo
# with the installed /usr/bin/pgspout and the SDK's out-of-tree tests
# (tests/integration/test_sdk_example.py, test_sdk_kit.py and
# test_webhook_sdk.py) against the
# installed headers, kit, pkg-config files and sinks. The packages are
# purged at the end.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$REPO/scripts/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    log "needs root (dpkg -i)"
    exit 1
fi
WORK=$(mktemp -d /tmp/pgspout-deb.XXXXXX)
installed=0
cleanup() {
    [ $installed -eq 0 ] || dpkg --purge pgspout libpgspout-dev >/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# The tracked files as they are in the work tree (the build directories and
# anything untracked stay out).
log "copying the tree"
mkdir "$WORK/pgspout"
git -C "$REPO" ls-files -z | tar -C "$REPO" --null -T - -c |
    tar -C "$WORK/pgspout" -x

# The unit tests already ran on this tree (scripts/test.sh); set
# PGSPOUT_PACKAGE_CHECK=1 to run them inside the package build as well.
log "dpkg-buildpackage"
[ "${PGSPOUT_PACKAGE_CHECK:-0}" = 1 ] || export DEB_BUILD_OPTIONS=nocheck
if ! (cd "$WORK/pgspout" && dpkg-buildpackage -us -uc -b \
    >"$WORK/build.log" 2>&1); then
    tail -40 "$WORK/build.log" >&2
    exit 1
fi

log "lintian"
lintian --fail-on error "$WORK"/pgspout_*.changes >&2

log "dpkg -i"
installed=1
dpkg -i "$WORK"/pgspout_*_amd64.deb "$WORK"/libpgspout-dev_*_amd64.deb >&2
test -x /usr/bin/pgspout
man -w pgspout.conf >/dev/null
systemd-analyze verify --man=no /lib/systemd/system/pgspout@.service >&2 ||
    { log "systemd-analyze refused the installed unit"; exit 1; }
for sink in file webhook; do
    /usr/bin/pgspout --list-sinks | grep -q "^$sink " ||
        { log "the installed pgspout finds no $sink sink"; exit 1; }
done

log "the demo, with the installed pgspout"
out=$(PGSPOUT_DEMO_BIN=/usr/bin/pgspout bash "$REPO/scripts/demo.sh")
grep -q '"op":"insert"' <<<"$out" ||
    { log "the demo printed no insert: $out"; exit 1; }

log "the SDK example and a kit sink, out of tree, against the installed files"
cd "$REPO"
PGSPOUT_BIN=/usr/bin/pgspout PGSPOUT_PG_VERSIONS=15 \
    python3 -m pytest tests/integration/test_sdk_example.py \
    tests/integration/test_sdk_kit.py tests/integration/test_webhook_sdk.py \
    -q \
    -p no:cacheprovider </dev/null >&2

#!/usr/bin/env bash
# Installs kinesalite (a Kinesis Data Streams implementation on Node.js, from
# the npm registry) for the Kinesis sink's integration tests, plus a tiny
# launcher that binds it to 127.0.0.1 on a free port and keeps it in memory.
# Idempotent: with everything in place it only checks a marker file.
#
#   scripts/install-kinesis.sh          (as root on Debian 12)
#   PGSPOUT_KINESIS_HOME=DIR overrides /var/cache/pgspout-test/kinesis
#
# kinesalite stores streams in memory (memdown) unless given --path, so its
# optional native LevelDB binding (leveldown) is neither built nor needed;
# install scripts are skipped.
set -euo pipefail

KINESALITE_VERSION=3.3.3
HOME_DIR=${PGSPOUT_KINESIS_HOME:-/var/cache/pgspout-test/kinesis}
# Bump the suffix whenever the launcher below changes.
MARKER="$HOME_DIR/installed-$KINESALITE_VERSION-launcher1"

log() { printf 'install-kinesis: %s\n' "$*" >&2; }

if [ -f "$MARKER" ] && [ -f "$HOME_DIR/serve.js" ] &&
    [ -f "$HOME_DIR/node_modules/kinesalite/index.js" ]; then
    exit 0
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        log "need Node.js and npm: apt-get install nodejs npm"
        exit 1
    fi
    log "installing nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends nodejs npm </dev/null >&2
fi

mkdir -p "$HOME_DIR"
cat >"$HOME_DIR/package.json" <<JSON
{
  "name": "pgspout-test-kinesis",
  "private": true,
  "dependencies": { "kinesalite": "$KINESALITE_VERSION" }
}
JSON
log "installing kinesalite $KINESALITE_VERSION into $HOME_DIR"
(cd "$HOME_DIR" && npm install --ignore-scripts --no-audit --no-fund \
    --omit=dev --loglevel=error >&2)

# Listens on 127.0.0.1 only, on the port given (0: any free one), prints
# "port N" once listening, and exits when its standard input closes, so a
# test harness that dies never leaves it behind.
cat >"$HOME_DIR/serve.js" <<'JS'
'use strict'
const kinesalite = require('kinesalite')
const port = parseInt(process.argv[2] || '0', 10)
const server = kinesalite({createStreamMs: 0, deleteStreamMs: 0,
                           updateStreamMs: 0, shardLimit: 100})
server.listen(port, '127.0.0.1', () => {
  process.stdout.write('port ' + server.address().port + '\n')
})
process.stdin.on('end', () => process.exit(0))
process.stdin.on('close', () => process.exit(0))
process.stdin.resume()
JS

node -e "require('$HOME_DIR/node_modules/kinesalite')" ||
    { log "kinesalite does not load"; exit 1; }
touch "$MARKER"
log "done"

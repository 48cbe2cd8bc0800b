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
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KINESALITE_VERSION=3.3.3
HOME_DIR=$(service_home kinesis)
# Bump the suffix whenever the launcher below changes.
MARKER="$HOME_DIR/installed-$KINESALITE_VERSION-launcher1"

already_installed "$MARKER" "$HOME_DIR/serve.js" \
    "$HOME_DIR/node_modules/kinesalite/index.js" && exit 0

have_commands node npm || apt_install nodejs npm

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
mark_installed "$HOME_DIR" "$MARKER"

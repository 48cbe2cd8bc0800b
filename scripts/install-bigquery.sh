#!/usr/bin/env bash
# Installs bqemulator (a BigQuery emulator in Python: the REST API on DuckDB,
# from PyPI) for the BigQuery sink's integration tests, into a virtualenv
# under the test cache, with every package pinned.
# Idempotent: with everything in place it only checks a marker file.
#
#   scripts/install-bigquery.sh          (as root on Debian 12)
#   PGSPOUT_BIGQUERY_HOME=DIR overrides /var/cache/pgspout-test/bigquery
#
# bqemulator loads DuckDB's "spatial" extension at start and would download
# it; the extension comes from PyPI instead (duckdb-extension-spatial, built
# for the same DuckDB release) and is placed where DuckDB looks for it under
# $HOME_DIR/home, which the harness uses as the emulator's HOME.
#
# goccy/bigquery-emulator was the other candidate: `go install` is refused
# (the module proxy will not list its versions), and building it through a
# wrapper module compiles ZetaSQL's C++ for more than 6 minutes on 2 cores
# and then fails with GCC 12 (it needs clang).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BQEMULATOR_VERSION=1.4.0
DUCKDB_VERSION=1.5.5
HOME_DIR=$(service_home bigquery)
VENV="$HOME_DIR/venv"
# Bump the suffix whenever the pins below change.
MARKER="$HOME_DIR/installed-$BQEMULATOR_VERSION-duckdb$DUCKDB_VERSION-1"

already_installed "$MARKER" && [ -x "$VENV/bin/bqemulator" ] && exit 0

PYTHON=${PGSPOUT_BIGQUERY_PYTHON:-}
if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys, venv, ensurepip
sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            PYTHON=$(command -v "$candidate")
            break
        fi
    done
fi
if [ -z "$PYTHON" ]; then
    log "need Python 3.10+ with venv"
    apt_install python3 python3-venv
    PYTHON=/usr/bin/python3
fi

mkdir -p "$HOME_DIR"
rm -rf "$VENV"
log "creating a virtualenv with $PYTHON in $VENV"
"$PYTHON" -m venv "$VENV"
cat >"$HOME_DIR/requirements.txt" <<REQ
bqemulator==$BQEMULATOR_VERSION
duckdb==$DUCKDB_VERSION
duckdb-extension-spatial==$DUCKDB_VERSION
alembic==1.20.1
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
asgiref==3.13.0
certifi==2026.10.18
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
cryptography==50.0.2
fastapi==0.165.0
fastavro==1.13.1
google-api-core==2.44.0
google-auth==2.62.2
google-cloud-bigquery-storage==2.43.0
googleapis-common-protos==1.76.0
grpcio==1.85.1
grpcio-health-checking==1.80.1
grpcio-status==1.85.1
grpcio-tools==1.80.1
h11==0.16.0
httpcore==1.0.9
httptools==0.9.0
httpx==0.28.1
idna==3.20
Mako==1.4.3
MarkupSafe==3.0.4
numpy==2.4.6
opentelemetry-api==1.45.2
opentelemetry-exporter-http-transport==0.66b2
opentelemetry-exporter-otlp==1.45.2
opentelemetry-exporter-otlp-common==0.66b2
opentelemetry-exporter-otlp-proto-common==1.45.2
opentelemetry-exporter-otlp-proto-grpc==1.45.2
opentelemetry-exporter-otlp-proto-http==1.45.2
opentelemetry-instrumentation==0.66b2
opentelemetry-instrumentation-asgi==0.66b2
opentelemetry-instrumentation-fastapi==0.66b2
opentelemetry-instrumentation-grpc==0.66b2
opentelemetry-proto==1.45.2
opentelemetry-sdk==1.45.2
opentelemetry-semantic-conventions==0.66b2
opentelemetry-util-http==0.66b2
orjson==3.13.0
packaging==26.3
prometheus_client==0.26.0
proto-plus==1.29.0
protobuf==6.33.6
pyarrow==26.0.1
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydantic==2.14.3
pydantic-settings==2.16.3
pydantic_core==2.50.4
PyJWT==2.15.1
python-dotenv==1.2.4
pytz==2026.6
PyYAML==6.0.3
requests==2.34.2
SQLAlchemy==2.1.9
sqlglot==30.11.0
starlette==1.10.0
structlog==26.1.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
uvicorn==0.54.0
uvloop==0.23.0
watchfiles==1.3.0
websockets==17.4
wrapt==2.5.2
REQ
log "installing bqemulator $BQEMULATOR_VERSION"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
    -r "$HOME_DIR/requirements.txt" >&2

# Where DuckDB looks for installed extensions: ~/.duckdb/extensions/vX/platform.
ext_dir="$HOME_DIR/home/.duckdb/extensions/v$DUCKDB_VERSION/linux_amd64"
mkdir -p "$ext_dir"
site=$("$VENV/bin/python" -c 'import duckdb_extension_spatial, os
print(os.path.dirname(duckdb_extension_spatial.__file__))')
cp "$site/extensions/v$DUCKDB_VERSION/spatial.duckdb_extension" "$ext_dir/"
mark_installed "$HOME_DIR" "$MARKER"

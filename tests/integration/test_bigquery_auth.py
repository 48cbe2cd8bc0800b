"""The BigQuery sink's Google credentials end to end: every credential type
and Google's discovery order against local token services that check what
they are sent and issue short-lived tokens (google_auth_server.py), and the
emulator behind a proxy that refuses an expired, revoked or missing token,
so rows read back from the emulator prove each request was authorized.
Tokens are refreshed in the background before they expire, a 401 brings a
new one, a token service that fails is retried with backoff, and no secret
reaches the log."""

import json
import os
import time

import pytest

import bigquery_server
import google_auth_server as ga
from pgharness import wait_until

LIFETIME_S = 20  # the tokens' lifetime: refreshed every 15 s


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    yield from bigquery_server.Emulator(
        str(tmp_path_factory.mktemp("bigquery-auth"))).session()


_datasets = iter(range(1, 1000))


@pytest.fixture
def dataset(emulator):
    name = "auth_%d" % next(_datasets)
    emulator.create_dataset(name)
    return name


@pytest.fixture(scope="module")
def test_key():
    return ga.new_key()


@pytest.fixture
def google(test_key):
    g = ga.GoogleAuth(test_key[1], lifetime_s=LIFETIME_S)
    try:
        yield g
    finally:
        g.stop()


@pytest.fixture
def proxy(google, emulator):
    p = ga.BigQueryProxy(google, emulator.url)
    try:
        yield p
    finally:
        p.stop()


def service_account(google, pem):
    return {"type": "service_account", "project_id": "pgspout-test",
            "private_key_id": "k1", "private_key": pem,
            "client_email": ga.SA_EMAIL, "client_id": "1",
            "token_uri": google.url + "/token"}


def authorized_user(google):
    return {"type": "authorized_user", "client_id": ga.CLIENT_ID,
            "client_secret": ga.CLIENT_SECRET,
            "refresh_token": ga.REFRESH_TOKEN,
            "token_uri": google.url + "/token"}


def external_account(google, source, impersonate):
    creds = {"type": "external_account", "audience": ga.AUDIENCE,
             "subject_token_type": ga.JWT_TOKEN_TYPE,
             "token_url": google.url + "/sts",
             "credential_source": source}
    if impersonate:
        creds["service_account_impersonation_url"] = (
            "%s/iam/v1/projects/-/serviceAccounts/%s:generateAccessToken"
            % (google.url, ga.SA_EMAIL))
    return creds


def write_json(path, content):
    path.write_text(json.dumps(content))
    return str(path)


def clean_env(tmp_path, **extra):
    """No Google settings of the machine's, and a HOME without gcloud's
    file (unless a test puts one there)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env.update(extra)
    return env


def sink_args(db, proxy, dataset, *extra):
    return ["-v", "-d", db.conninfo, "--slot", db.name, "--sink", "bigquery",
            "-o", "project=" + bigquery_server.PROJECT,
            "-o", "dataset=" + dataset, "-o", "endpoint=" + proxy.url,
            "-o", "retry_base=20ms", "-o", "retry_max=500ms",
            "-o", "request_timeout=30s"] + list(extra)


def changelog_ids(emulator, dataset, table="t"):
    try:
        rows = emulator.query("SELECT id FROM `%s.%s.public_%s_changelog`"
                              % (bigquery_server.PROJECT, dataset, table))
    except Exception:   # the table is not there yet
        return []
    return sorted(r["id"] for r in rows)


def assert_no_secret(text, pem):
    body = "".join(pem.splitlines()[1:3])
    for secret in (body, ga.CLIENT_SECRET, ga.REFRESH_TOKEN, ga.SUBJECT_TOKEN,
                   ga.SUBJECT_HEADER[1], ga.ACCESS_PREFIX):
        assert secret not in text, "the log holds %r:\n%s" % (
            secret, text[-4000:])


def run_rows(db, pgspout, proxy, dataset, env, first, last, *extra):
    db.psql("insert into t select g, 'v' || g from generate_series(%d, %d) g;"
            % (first, last))
    r = pgspout.run(*sink_args(db, proxy, dataset, "--endpos",
                               db.current_lsn(), *extra), env=env,
                    timeout=150)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


def setup_table(db):
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)


# ---- every credential type ----

def credentials_of(kind, google, pem, tmp_path):
    """(options, env extras, the endpoint whose tokens BigQuery sees)."""
    if kind == "metadata":
        return ["-o", "auth=adc"], {"GCE_METADATA_HOST": google.host}, \
            "metadata"
    if kind == "service_account":
        content, issuer = service_account(google, pem), ga.JWT_GRANT
    elif kind == "authorized_user":
        content, issuer = authorized_user(google), "refresh_token"
    elif kind == "external_file_text":
        subject = tmp_path / "subject.jwt"
        subject.write_text(ga.SUBJECT_TOKEN + "\n")
        content = external_account(google, {"file": str(subject)}, False)
        issuer = "sts"
    else:
        source = {"url": google.url + "/subject",
                  "headers": dict([ga.SUBJECT_HEADER]),
                  "format": {"type": "json",
                             "subject_token_field_name": "id_token"}}
        content = external_account(google, source, True)
        issuer = "iam"
    path = write_json(tmp_path / "creds.json", content)
    return ["-o", "auth=file", "-o", "credentials_file=" + path], {}, issuer


@pytest.mark.parametrize("kind", ["service_account", "authorized_user",
                                  "external_file_text",
                                  "external_url_json_impersonation",
                                  "metadata"])
def test_credential_types(db, pgspout, emulator, dataset, google, proxy,
                          test_key, tmp_path, kind):
    pem = test_key[0]
    setup_table(db)
    options, extra_env, issuer = credentials_of(kind, google, pem, tmp_path)
    r = run_rows(db, pgspout, proxy, dataset, clean_env(tmp_path, **extra_env),
                 1, 20, *options)
    # Every row stored, through a proxy that let only valid tokens pass,
    # each token issued for a request the token service found right.
    assert changelog_ids(emulator, dataset) == list(range(1, 21))
    assert google.errors == []
    assert proxy.refusals() == []
    assert google.issued_by(issuer), google.issued
    assert_no_secret(r.stderr, pem)


# ---- discovery order (auth = adc) ----

def test_discovery_order(db, pgspout, emulator, dataset, google, proxy,
                         test_key, tmp_path):
    pem = test_key[0]
    setup_table(db)
    sa = write_json(tmp_path / "sa.json", service_account(google, pem))
    env = clean_env(tmp_path, GCE_METADATA_HOST=google.host)
    gcloud = tmp_path / "home" / ".config" / "gcloud"
    gcloud.mkdir(parents=True)
    well_known = write_json(gcloud / "application_default_credentials.json",
                            authorized_user(google))

    def used(first, last, environment, *extra):
        before = len(google.issued)
        r = run_rows(db, pgspout, proxy, dataset, environment, first, last,
                     "-o", "auth=adc", *extra)
        assert_no_secret(r.stderr, pem)
        return {e for e, _ in google.issued[before:]}, r.stderr

    # GOOGLE_APPLICATION_CREDENTIALS before gcloud's file.
    grants, log = used(1, 5, dict(env, GOOGLE_APPLICATION_CREDENTIALS=sa))
    assert grants == {ga.JWT_GRANT}
    assert "service_account credentials from %s " \
        "(GOOGLE_APPLICATION_CREDENTIALS)" % sa in log
    # credentials_file before the variable.
    grants, log = used(6, 10, dict(env, GOOGLE_APPLICATION_CREDENTIALS=sa),
                       "-o", "credentials_file=" + well_known)
    assert grants == {"refresh_token"}
    # gcloud's file when the variable is not set.
    grants, log = used(11, 15, env)
    assert grants == {"refresh_token"}
    assert "authorized_user credentials from %s (gcloud's well-known file)" \
        % well_known in log
    # The metadata server last.
    os.unlink(well_known)
    grants, log = used(16, 20, env)
    assert grants == {"metadata"}
    assert "auth: metadata server http://%s" % google.host in log

    assert changelog_ids(emulator, dataset) == list(range(1, 21))
    assert google.errors == [] and proxy.refusals() == []


# ---- refresh under load, 401s, a failing token service ----

def spawn_sink(db, pgspout, proxy, dataset, env, *extra):
    return pgspout.spawn(*sink_args(db, proxy, dataset, *extra), env=env)


def wait_rows(pgspout, proc, emulator, dataset, n, timeout=120):
    """Until the changelog holds n rows, while pgspout runs."""
    def arrived():
        assert proc.poll() is None, "pgspout exited %d:\n%s" % (
            proc.returncode, pgspout.stderr_of(proc)[-4000:])
        return len(changelog_ids(emulator, dataset)) >= n
    wait_until(arrived, timeout=timeout, what="%d rows in the emulator" % n)


def test_refresh_under_load(db, pgspout, emulator, dataset, google, proxy,
                            test_key, tmp_path):
    """Rows keep coming for well over two token lifetimes: the tokens are
    replaced before they expire (the proxy refuses an expired one), by
    the background refresh and not once per request, and nothing is
    lost."""
    pem = test_key[0]
    setup_table(db)
    path = write_json(tmp_path / "sa.json", service_account(google, pem))
    proc = spawn_sink(db, pgspout, proxy, dataset, clean_env(tmp_path),
                      "-o", "auth=file", "-o", "credentials_file=" + path)
    started = time.monotonic()
    batches = 30 if os.environ.get("PGSPOUT_FAULTS_FULL") else 15
    per_batch = 40
    for b in range(batches):
        first = b * per_batch + 1
        db.psql("insert into t select g, 'v' || g from "
                "generate_series(%d, %d) g;" % (first, first + per_batch - 1))
        time.sleep(3)
    total = batches * per_batch
    wait_rows(pgspout, proc, emulator, dataset, total)
    elapsed = time.monotonic() - started
    assert pgspout.stop(proc) == 0
    log = pgspout.stderr_of(proc)

    assert changelog_ids(emulator, dataset) == list(range(1, total + 1))
    assert google.errors == []
    assert proxy.refusals("expired") == [], proxy.refusals()
    assert proxy.refusals() == []
    # Refreshed (the run outlived two lifetimes), a quarter lifetime
    # ahead, not per request: one token per 15 s of the run and the first.
    fetched = len(google.issued)
    assert fetched >= 3, google.issued
    assert fetched <= 2 + elapsed / (LIFETIME_S * 0.5), \
        (fetched, elapsed, proxy.passed)
    assert_no_secret(log, pem)


def test_401_brings_a_new_token(db, pgspout, emulator, dataset, test_key,
                                proxy, google, tmp_path):
    """A token that the service stops accepting long before it expires
    (revoked): the 401 makes the sink fetch a new one and send that
    request again."""
    pem = test_key[0]
    google.lifetime_s = 3600  # only the 401 can bring a new token
    setup_table(db)
    path = write_json(tmp_path / "user.json", authorized_user(google))
    proc = spawn_sink(db, pgspout, proxy, dataset, clean_env(tmp_path),
                      "-o", "auth=file", "-o", "credentials_file=" + path)
    db.psql("insert into t select g, 'v' from generate_series(1, 10) g;")
    wait_rows(pgspout, proc, emulator, dataset, 10)
    google.revoke_all()
    db.psql("insert into t select g, 'v' from generate_series(11, 30) g;")
    wait_rows(pgspout, proc, emulator, dataset, 30)
    assert pgspout.stop(proc) == 0
    assert changelog_ids(emulator, dataset) == list(range(1, 31))
    assert proxy.refusals("revoked"), proxy.refusals()
    assert len(google.issued_by("refresh_token")) == 2
    assert google.errors == []
    assert_no_secret(pgspout.stderr_of(proc), pem)


def test_failing_token_service_is_retried(db, pgspout, emulator, dataset,
                                          google, proxy, test_key, tmp_path):
    """The metadata server answers 503 a few times: the sink logs it, tries
    again with backoff, and every row arrives."""
    pem = test_key[0]
    setup_table(db)
    google.fail_next = 4
    r = run_rows(db, pgspout, proxy, dataset,
                 clean_env(tmp_path, GCE_METADATA_HOST=google.host), 1, 10,
                 "-o", "auth=metadata")
    assert google.failed == 4
    assert changelog_ids(emulator, dataset) == list(range(1, 11))
    assert "cannot get an access token (metadata credentials, 1 failure " \
        "in a row; retrying with backoff): metadata server http://%s " \
        "answered HTTP 503" % google.host in r.stderr
    assert "got an access token (metadata credentials) again" in r.stderr
    # Only valid tokens or none at all (before the first) reached BigQuery.
    assert {why for why, _, _ in proxy.refusals()} <= {"missing"}
    assert_no_secret(r.stderr, pem)


def test_missing_subject_token_file(db, pgspout, emulator, dataset, google,
                                    proxy, test_key, tmp_path):
    """The subject token file is not there (yet): the error names it, the
    sink keeps trying, and once it appears the rows go through."""
    pem = test_key[0]
    setup_table(db)
    subject = tmp_path / "token" / "subject.jwt"
    path = write_json(tmp_path / "wif.json", external_account(
        google, {"file": str(subject), "format": {"type": "text"}}, True))
    proc = spawn_sink(db, pgspout, proxy, dataset, clean_env(tmp_path),
                      "-o", "credentials_file=" + path, "-o", "auth=file")
    db.psql("insert into t select g, 'v' from generate_series(1, 5) g;")
    wanted = "cannot read the subject token file %s: No such file or " \
        "directory" % subject
    wait_until(lambda: wanted in pgspout.stderr_of(proc), timeout=60,
               what="the error naming the subject token file")
    subject.parent.mkdir()
    subject.write_text(ga.SUBJECT_TOKEN)
    wait_rows(pgspout, proc, emulator, dataset, 5)
    assert pgspout.stop(proc) == 0
    assert changelog_ids(emulator, dataset) == list(range(1, 6))
    assert google.errors == []
    assert_no_secret(pgspout.stderr_of(proc), pem)


# ---- credentials files that are not right ----

@pytest.mark.parametrize("content,message", [
    ('{"type": "service_account", ', "not a JSON object"),
    ('{"type": "impersonated_service_account"}',
     '"type" is "impersonated_service_account", which is not supported'),
    ('{"client_email": "a@b"}', '"type" is missing'),
    ('{"type": "authorized_user", "client_id": "x", "client_secret": "%s"}'
     % ga.CLIENT_SECRET,
     '"refresh_token" is missing or empty (needed for type authorized_user)'),
    ('{"type": "external_account", "audience": "a", "subject_token_type": '
     '"t", "token_url": "u", "credential_source": {"executable": {}}}',
     'has neither "file" nor "url"'),
])
def test_bad_credentials_file(db, pgspout, tmp_path, content, message):
    setup_table(db)
    path = tmp_path / "creds.json"
    path.write_text(content)
    r = pgspout.run("-d", db.conninfo, "--slot", db.name, "--sink",
                    "bigquery", "-o", "project=p", "-o", "dataset=d",
                    "-o", "credentials_file=%s" % path,
                    "--endpos", db.current_lsn(), env=clean_env(tmp_path),
                    timeout=60)
    assert r.returncode == 1, r.stderr
    assert "credentials file %s: " % path in r.stderr
    assert message in r.stderr, r.stderr
    assert ga.CLIENT_SECRET not in r.stderr

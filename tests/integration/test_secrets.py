"""Secrets never show: with a password in the conninfo, AWS keys and a GCP
service-account key in the environment, Kafka SASL and key passwords as
kafka.<property> options, no log line (verbose included),
error message or process title of pgspout contains any of them, whatever
the mode: streaming, --list-tables, a bad config file, sinks whose service
is down or whose credentials are broken.

The process title: pgspout does not rewrite its argv, so a conninfo given
with -d (like one given to psql or pg_recvlogical) can be read from
/proc/PID/cmdline by the same user and by root. The README recommends
PGPASSWORD, a .pgpass file or the config file's `connection` instead; the
tests below check that those routes keep the password out of the process
title, and that nothing pgspout itself shows (its thread names included)
carries a secret. The same holds for JSON log lines and for what the HTTP
endpoint serves (/metrics, /ready, /health)."""

import http.server
import json
import os
import signal
import socket
import threading
import time

import pytest

from ops_support import free_port, http_get, json_lines
from pgharness import PASSWORD_USER, wait_until

PASSWORD = "Sekr1t-pw-XYZZY"
AWS_KEY_ID = "AKIAPGSPOUTSECRET777"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPGSPOUTSECRET"
AWS_TOKEN = "FwoGZXIvYXdzEPGSPOUTSESSIONTOKEN"
GCP_KEY_MARKER = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-PGSPOUT-GCP-SECRET"
GCP_CLIENT_SECRET = "GOCSPX-pgspout-client-SECRET"
GCP_REFRESH_TOKEN = "1//0g-PGSPOUT-REFRESH-SECRET"
GCP_SUBJECT_TOKEN = "eyJhbGciOi.PGSPOUT-SUBJECT-SECRET.sig"
ES_PASSWORD = "es-Pgspout-Secret-pw"
KAFKA_PASSWORD = "kafka-Pgspout-Sasl-Secret"
KAFKA_KEY_PASSWORD = "kafka-Pgspout-Key-Secret"
SECRETS = [PASSWORD, AWS_KEY_ID, AWS_SECRET, AWS_TOKEN, GCP_KEY_MARKER,
           GCP_CLIENT_SECRET, GCP_REFRESH_TOKEN, GCP_SUBJECT_TOKEN,
           ES_PASSWORD, KAFKA_PASSWORD, KAFKA_KEY_PASSWORD]


def assert_no_secret(where, *texts):
    for text in texts:
        for secret in SECRETS:
            assert secret not in (text or ""), \
                "%s contains %r:\n%s" % (where, secret, text[-4000:])


@pytest.fixture
def secret_env(tmp_path):
    key = tmp_path / "gcp-key.json"
    key.write_text(json.dumps({
        "type": "service_account",
        "client_email": "spout@example.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\n%s\n"
                       "-----END PRIVATE KEY-----\n" % GCP_KEY_MARKER,
    }))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PG", "AWS_", "GOOGLE_"))
           or k.startswith("PGSPOUT")}
    env.update(AWS_ACCESS_KEY_ID=AWS_KEY_ID, AWS_SECRET_ACCESS_KEY=AWS_SECRET,
               AWS_SESSION_TOKEN=AWS_TOKEN, AWS_REGION="us-east-1",
               GOOGLE_APPLICATION_CREDENTIALS=str(key))
    return env


@pytest.fixture
def dead_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


class RefusingTokenService:
    """A token endpoint that answers every request with 503 and counts
    them: how the test sees the sink try again."""

    def __init__(self):
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                service.requests += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def refusing_token_service():
    service = RefusingTokenService()
    yield service
    service.close()


def password_conninfo(db):
    return db.server.conninfo(db.name, user=PASSWORD_USER, password=PASSWORD)


def thread_titles(pid):
    titles = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                titles.append(f.read())
        except OSError:
            pass
    return "".join(titles)


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def test_stream_verbose(db, pgspout, tmp_path, secret_env):
    db.psql("create table t (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into t values (1, 'a'), (2, 'b'); delete from t;")
    out = str(tmp_path / "out.jsonl")
    r = pgspout.run("-v", "-d", password_conninfo(db), "--slot", db.name,
                    "--sink", "file", "-o", "path=" + out,
                    "--endpos", db.current_lsn(), env=secret_env)
    assert r.returncode == 0, r.stderr
    assert "debug" in r.stderr.lower() or r.stderr.strip(), r.stderr
    assert_no_secret("stream -v output", r.stderr, r.stdout)
    with open(out) as f:
        assert_no_secret("the change events", f.read())


def test_list_tables_verbose(db, pgspout, secret_env):
    db.psql("create table listed (id int primary key);")
    r = pgspout.run("-v", "-d", password_conninfo(db), "--list-tables",
                    env=secret_env)
    assert r.returncode == 0, r.stderr
    assert "listed" in r.stdout
    assert_no_secret("--list-tables -v", r.stderr, r.stdout)


def test_list_sinks_verbose(pgspout, secret_env):
    r = pgspout.run("-v", "--list-sinks", env=secret_env)
    assert r.returncode == 0, r.stderr
    assert_no_secret("--list-sinks", r.stderr, r.stdout)


def test_bad_config_with_secrets(db, pgspout, tmp_path, secret_env):
    cfg = tmp_path / "bad.conf"
    cfg.write_text('connection = "%s";\n'
                   'sinks = ( { name = "es"; type = "elastic";\n'
                   '  options = { url = "http://127.0.0.1:9";\n'
                   '    password = "%s"; bulk_size = "x"; }; } );\n'
                   'typo_key = "%s";\n'
                   % (password_conninfo(db), ES_PASSWORD, AWS_SECRET))
    r = pgspout.run("-v", "-c", str(cfg), env=secret_env)
    assert r.returncode == 2, r.stderr
    assert "typo_key" in r.stderr
    assert_no_secret("bad config", r.stderr, r.stdout)
    # The same file without the typo fails on the sink options instead.
    cfg.write_text(cfg.read_text().replace('typo_key = "%s";\n' % AWS_SECRET,
                                           ""))
    r = pgspout.run("-v", "-c", str(cfg), env=secret_env)
    assert r.returncode == 2, r.stderr
    assert "options" in r.stderr, r.stderr
    assert_no_secret("bad sink option", r.stderr, r.stdout)


def test_wrong_password_and_bad_conninfo(db, pgspout, tmp_path, secret_env):
    out = str(tmp_path / "o.jsonl")
    wrong = db.server.conninfo(db.name, user=PASSWORD_USER,
                               password=PASSWORD + "x")
    r = pgspout.run("-v", "-d", wrong, "--slot", db.name, "--sink", "file",
                    "-o", "path=" + out, env=secret_env, timeout=60)
    assert r.returncode == 1, r.stderr
    assert_no_secret("wrong password", r.stderr, r.stdout)
    r = pgspout.run("-d", "host=127.0.0.1 password='%s" % PASSWORD,
                    "--slot", db.name, "--sink", "file", "-o", "path=" + out,
                    env=secret_env)
    assert r.returncode == 2, r.stderr
    assert_no_secret("malformed conninfo", r.stderr, r.stdout)


def test_kinesis_down_verbose(db, pgspout, tmp_path, secret_env, dead_port):
    """AWS credentials from the environment and as options, the service
    unreachable: retries are logged, credentials are not; the process
    title and thread names stay clean while it runs."""
    db.psql("create table k (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into k select generate_series(1, 20);")
    env = dict(secret_env, PGPASSWORD=PASSWORD, PGUSER=PASSWORD_USER)
    conninfo = "host=127.0.0.1 port=%d dbname=%s" % (db.server.port, db.name)
    proc = pgspout.spawn("-v", "-d", conninfo, "--slot", db.name,
                         "--sink", "kinesis", "-o", "stream=s",
                         "-o", "endpoint=http://127.0.0.1:%d" % dead_port,
                         "-o", "secret_access_key=" + AWS_SECRET,
                         "-o", "access_key_id=" + AWS_KEY_ID,
                         "-o", "retry_max=200ms", env=env)
    wait_until(lambda: db.slot_info(db.name)["active"], timeout=60,
               what="pgspout streaming")
    time.sleep(2)
    assert proc.poll() is None, pgspout.stderr_of(proc)
    titles = thread_titles(proc.pid)
    line = cmdline(proc.pid)
    # The -o values are on the command line by the user's choice; the
    # password (from PGPASSWORD) and the environment's keys are not.
    for secret in (PASSWORD, AWS_TOKEN, GCP_KEY_MARKER):
        assert secret not in line, line
    assert_no_secret("thread names", titles)
    # Killed rather than stopped: the stop of a sink whose service is down
    # is another test's subject (it waits for the service).
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    log = pgspout.stderr_of(proc)
    assert "will be sent again" in log, log[-2000:]
    assert_no_secret("kinesis -v log", log)


def test_aws_credential_sources_verbose(db, pgspout, tmp_path, secret_env,
                                       dead_port):
    """AWS credentials from a credential_process (the keys in its output),
    from a container endpoint whose authorization token is secret too, and
    from a credential_process that fails after printing keys: none shows in
    the -v log, whether the sink retries (service down) or cannot get
    credentials at all (the process fails; the message gives its exit
    status, not its output)."""
    db.psql("create table k (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into k values (1);")
    document = json.dumps({"Version": 1, "AccessKeyId": AWS_KEY_ID,
                           "SecretAccessKey": AWS_SECRET,
                           "SessionToken": AWS_TOKEN})
    good, bad = tmp_path / "good.sh", tmp_path / "bad.sh"
    good.write_text("#!/bin/sh\necho '%s'\n" % document)
    bad.write_text("#!/bin/sh\necho '%s'\nexit 3\n" % document)
    for script in (good, bad):
        script.chmod(0o700)
    config = tmp_path / "aws-config"
    config.write_text("[profile good]\ncredential_process = %s\n"
                      "[profile bad]\ncredential_process = %s\n"
                      % (good, bad))
    env = {k: v for k, v in secret_env.items() if not k.startswith("AWS_")}
    env.update(AWS_REGION="us-east-1", AWS_CONFIG_FILE=str(config),
               AWS_EC2_METADATA_DISABLED="true", HOME=str(tmp_path))
    for profile, expect in (("good", "will be sent again"),
                            ("bad", "credential_process exited with "
                                    "status 3")):
        proc = pgspout.spawn("-v", "-d", db.conninfo, "--slot", db.name,
                             "--sink", "kinesis", "-o", "stream=s",
                             "-o", "endpoint=http://127.0.0.1:%d" % dead_port,
                             "-o", "retry_max=200ms",
                             env=dict(env, AWS_PROFILE=profile))
        wait_until(lambda: expect in pgspout.stderr_of(proc) or
                   proc.poll() is not None, timeout=60, what=expect)
        assert proc.poll() is None, pgspout.stderr_of(proc)[-3000:]
        assert_no_secret("process title", cmdline(proc.pid),
                         thread_titles(proc.pid))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert_no_secret("kinesis %s log" % profile, pgspout.stderr_of(proc))
    # The container endpoint's authorization token.
    import aws_support
    issued = aws_support.Issued()
    server = aws_support.ContainerServer(issued, "Bearer " + AWS_TOKEN)
    try:
        proc = pgspout.spawn(
            "-v", "-d", db.conninfo, "--slot", db.name, "--sink", "kinesis",
            "-o", "stream=s", "-o", "endpoint=http://127.0.0.1:%d" % dead_port,
            "-o", "retry_max=200ms",
            env=dict(env, AWS_CONTAINER_CREDENTIALS_FULL_URI=server.url,
                     AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer " + AWS_TOKEN))
        wait_until(lambda: "will be sent again" in pgspout.stderr_of(proc) or
                   proc.poll() is not None, timeout=60, what="retries")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        server.close()
    assert server.requests, "the container endpoint was not asked"
    log = pgspout.stderr_of(proc)
    assert "container credentials" in log, log[-2000:]
    assert_no_secret("kinesis container log", log)
    for secret in issued.secrets():
        assert secret not in log


def test_process_title_with_config_connection(db, pgspout, tmp_path,
                                              secret_env):
    """With the conninfo in the config file, the password is in no process
    title while streaming."""
    db.psql("create table c (id int primary key);")
    db.create_slot(db.name)
    cfg = tmp_path / "pw.conf"
    cfg.write_text('connection = "%s";\nslot = "%s";\nsinks = ( { name = '
                   '"f"; type = "file"; options = { path = "%s"; }; } );\n'
                   % (password_conninfo(db), db.name, tmp_path / "c.jsonl"))
    os.chmod(cfg, 0o600)
    proc = pgspout.spawn("-v", "-c", str(cfg), env=secret_env)
    wait_until(lambda: (db.slot_info(db.name) or {}).get("active"),
               timeout=60, what="pgspout streaming")
    db.psql("insert into c values (1);")
    time.sleep(0.5)
    assert proc.poll() is None, pgspout.stderr_of(proc)
    assert_no_secret("process title", cmdline(proc.pid),
                     thread_titles(proc.pid))
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)
    assert_no_secret("config-file run log", pgspout.stderr_of(proc))
    # The server saw an authenticated replication connection from it.
    assert "FATAL" not in pgspout.stderr_of(proc)


def test_bigquery_broken_key_file(db, pgspout, tmp_path, secret_env):
    """A service-account key that is not a usable RSA key: the error says
    so without quoting the file's content."""
    db.psql("create table b (id int primary key);")
    db.create_slot(db.name)
    r = pgspout.run("-v", "-d", password_conninfo(db), "--slot", db.name,
                    "--sink", "bigquery", "-o", "project=p",
                    "-o", "dataset=d", "-o", "auth=key",
                    "--endpos", db.current_lsn(), env=secret_env, timeout=60)
    assert r.returncode != 0, r.stderr
    assert r.stderr.strip()
    assert_no_secret("bigquery broken key", r.stderr, r.stdout)


def google_credentials(tmp_path, kind, token_url):
    """A credentials file of kind whose token service is token_url."""
    if kind == "authorized_user":
        content = {"type": kind, "client_id": "c.apps.example",
                   "client_secret": GCP_CLIENT_SECRET,
                   "refresh_token": GCP_REFRESH_TOKEN, "token_uri": token_url}
    else:
        subject = tmp_path / "subject.jwt"
        subject.write_text(GCP_SUBJECT_TOKEN)
        content = {"type": kind, "audience": "//iam.example/pool",
                   "subject_token_type":
                       "urn:ietf:params:oauth:token-type:jwt",
                   "token_url": token_url, "client_id": "c",
                   "client_secret": GCP_CLIENT_SECRET,
                   "credential_source": {"file": str(subject)}}
    path = tmp_path / ("%s.json" % kind)
    path.write_text(json.dumps(content))
    return str(path)


@pytest.mark.parametrize("kind", ["authorized_user", "external_account"])
def test_bigquery_token_service_down_verbose(db, pgspout, tmp_path,
                                             secret_env, dead_port,
                                             refusing_token_service, kind):
    """gcloud user credentials, or workload identity federation, whose
    token service refuses (503): the failed fetch is logged and retried in
    the background (the service sees the requests come again), the client
    secret, refresh token and subject token are not logged."""
    db.psql("create table g (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into g select generate_series(1, 5);")
    service = refusing_token_service
    path = google_credentials(tmp_path, kind, service.url + "/token")
    env = dict(secret_env, PGPASSWORD=PASSWORD, PGUSER=PASSWORD_USER)
    conninfo = "host=127.0.0.1 port=%d dbname=%s" % (db.server.port, db.name)
    proc = pgspout.spawn("-v", "-d", conninfo, "--slot",
                         db.name, "--sink", "bigquery", "-o", "project=p",
                         "-o", "dataset=d", "-o",
                         "endpoint=http://127.0.0.1:%d" % dead_port,
                         "-o", "auth=file", "-o", "credentials_file=" + path,
                         "-o", "retry_max=200ms", env=env)
    # Generous: valgrind (scripts/memcheck.sh) on a loaded machine is slow.
    wait_until(lambda: service.requests >= 3 and "1 failure in a row" in
               pgspout.stderr_of(proc), timeout=180,
               what="token fetches refused, logged and tried again")
    assert proc.poll() is None, pgspout.stderr_of(proc)
    assert_no_secret("process title", cmdline(proc.pid),
                     thread_titles(proc.pid))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    log = pgspout.stderr_of(proc)
    assert "cannot get an access token (%s credentials" % kind in log
    assert "503" in log, log[-3000:]
    assert_no_secret("bigquery -v log", log)


def test_json_logs_and_http_endpoint(db, pgspout, tmp_path, secret_env,
                                     dead_port):
    """JSON logs, a password in the conninfo, an elastic sink with a
    password whose service is down (so it retries and says so), and the
    HTTP endpoint: no secret in any line, in any field, nor in what the
    endpoint serves."""
    db.psql("create table j (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into j select generate_series(1, 5);")
    port = free_port()
    proc = pgspout.spawn("-v", "--log-format", "json",
                         "-d", password_conninfo(db), "--slot", db.name,
                         "--sink", "elastic",
                         "-o", "url=http://127.0.0.1:%d" % dead_port,
                         "-o", "username=u", "-o", "password=" + ES_PASSWORD,
                         "-o", "retry_max=200ms",
                         "--http", "127.0.0.1:%d" % port, env=secret_env)
    wait_until(lambda: "will be sent again" in pgspout.stderr_of(proc),
               timeout=60, what="the sink retrying")
    served = [http_get(port, path)[1]
              for path in ("/metrics", "/ready", "/health")]
    assert "pgspout_sink_records_retried_total" in served[0], served[0]
    assert_no_secret("the HTTP endpoint", *served)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    log = pgspout.stderr_of(proc)
    lines = json_lines(log)
    assert any(x["level"] == "debug" for x in lines)
    assert_no_secret("JSON log", log)
    assert_no_secret("JSON log fields", *(json.dumps(x["fields"])
                                          for x in lines))


def kafka_secret_options():
    return ["-o", "kafka.security.protocol=SASL_PLAINTEXT",
            "-o", "kafka.sasl.mechanisms=PLAIN",
            "-o", "kafka.sasl.username=spout",
            "-o", "kafka.sasl.password=" + KAFKA_PASSWORD,
            "-o", "kafka.ssl.key.password=" + KAFKA_KEY_PASSWORD]


def test_kafka_down_verbose(db, pgspout, secret_env, dead_port):
    """SASL and key passwords given as kafka.<property> options, librdkafka
    logging everything (debug=all prints its whole configuration) and the
    broker unreachable: no log line carries them."""
    db.psql("create table k (id int primary key);")
    db.create_slot(db.name)
    db.psql("insert into k select generate_series(1, 20);")
    proc = pgspout.spawn("-v", "-d", password_conninfo(db), "--slot", db.name,
                         "--sink", "kafka",
                         "-o", "brokers=127.0.0.1:%d" % dead_port,
                         "-o", "kafka.debug=all",
                         *kafka_secret_options(), env=secret_env)
    wait_until(lambda: "Connection refused" in pgspout.stderr_of(proc),
               timeout=60, what="the broker refusing connections")
    assert proc.poll() is None, pgspout.stderr_of(proc)
    assert_no_secret("thread names", thread_titles(proc.pid))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    log = pgspout.stderr_of(proc)
    assert "sasl.username" in log or "SASL" in log, log[-2000:]
    assert_no_secret("kafka -v log", log)


def test_kafka_bad_options_with_secrets(db, pgspout, tmp_path, secret_env,
                                        dead_port):
    """A config file holding Kafka secrets in nested groups, with a bad
    property beside them (and a secret given where librdkafka quotes a
    refused value): the errors name the option, never a secret."""
    db.create_slot(db.name)
    cfg = tmp_path / "kafka.conf"
    cfg.write_text(
        'connection = "%s";\nslot = "%s";\n'
        'sinks = ( { name = "k"; type = "kafka";\n'
        '  options = { brokers = "127.0.0.1:%d";\n'
        '    kafka = { sasl = { password = "%s"; mechanisms = "PLAIN"; };\n'
        '              ssl = { key = { password = "%s"; }; };\n'
        '              security = { protocol = "BOGUS"; }; }; }; } );\n'
        % (password_conninfo(db), db.name, dead_port, KAFKA_PASSWORD,
           KAFKA_KEY_PASSWORD))
    r = pgspout.run("-v", "-c", str(cfg), env=secret_env, timeout=60)
    # A configuration error (the sink's check_options, ABI 1.7), named by
    # file, line and key.
    assert r.returncode == 2, r.stderr
    assert "%s:7: sinks.[0].options.kafka.security.protocol: " % cfg \
        in r.stderr, r.stderr
    assert_no_secret("kafka bad option", r.stderr, r.stdout)
    r = pgspout.run("-v", "-d", password_conninfo(db), "--slot", db.name,
                    "--sink", "kafka", "-o", "brokers=127.0.0.1:%d" % dead_port,
                    "-o", "kafka.sasl.oauthbearer.method=" + KAFKA_PASSWORD,
                    env=secret_env, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "command line: -o kafka.sasl.oauthbearer.method: " in r.stderr, \
        r.stderr
    assert_no_secret("kafka secret refused by librdkafka", r.stderr, r.stdout)

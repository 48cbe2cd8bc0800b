"""The Kinesis sink's AWS credentials (plugins/aws, the SDKs' default
chain): temporary credentials from moto's STS (AssumeRole through a
source_profile, AssumeRoleWithWebIdentity) renewed before they expire
while a stream runs, an ExpiredTokenException answer that makes the sink
fetch new ones and retry, STS down (the sink waits and says so on /ready,
nothing lost), EC2 instance metadata over IMDSv2 only (IMDSv1 only when
asked), the container credentials endpoint, credential_process, and bad
configurations with messages naming the file, line and key.

Which credentials signed each request is checked by a proxy in front of
kinesalite (aws_support.KinesisProxy): it accepts only sets a source issued,
with their own session token, before their expiration, so a test fails
when the sink uses wrong or lapsed credentials.

Counts: a 40-second stream with 30-second credentials by default;
PGSPOUT_FAULTS_FULL=1 streams for three minutes."""

import json
import os
import stat
import time

import pytest

import aws_support
import kinesis_server
from faults_support import FULL
from ops_support import free_port, reasons, spawn_streaming
from pgharness import lsn_to_int, wait_until

ROLE_ARN = "arn:aws:iam::123456789012:role/pgspout"
BASE_KEY = "AKIDBASESOURCE0001"
BASE_SECRET = "baseSourceSECRET/credentials+file"
STREAM_SECONDS = 180 if FULL else 40
_streams = iter(range(1, 10 ** 6))


@pytest.fixture(scope="session")
def kinesalite():
    yield from kinesis_server.Kinesalite().session()


@pytest.fixture(scope="session")
def moto():
    yield from aws_support.Moto().session()


@pytest.fixture
def aws(kinesalite, moto):
    """Fresh proxies (and record of issued credentials) for one test."""
    issued = aws_support.Issued()
    sts = aws_support.StsProxy(moto.port, issued)
    kin = aws_support.KinesisProxy(kinesalite.port, issued)
    servers = [sts, kin]

    class Aws:
        pass
    a = Aws()
    a.issued, a.sts, a.kinesis, a.servers = issued, sts, kin, servers
    yield a
    for s in servers:
        s.close()


def base_env(tmp_path, aws, **extra):
    """No credentials anywhere but what the test adds; HOME has no ~/.aws;
    endpoints by the SDKs' variables, so the sink needs no endpoint
    option."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true",
               AWS_ENDPOINT_URL_KINESIS=aws.kinesis.url,
               AWS_ENDPOINT_URL_STS=aws.sts.url)
    env.update(extra)
    return env


def new_stream(kinesalite):
    name = "pgspout-creds-%d" % next(_streams)
    kinesalite.create_stream(name, 2)
    return name


def args(db, stream, *extra):
    return ["-d", db.conninfo, "--slot", db.name, "--sink", "kinesis",
            "-o", "stream=" + stream, "-o", "linger=5ms",
            "-o", "retry_max=1s"] + list(extra)


def inserted_ids(kinesalite, stream):
    ids = set()
    for records in kinesalite.records(stream).values():
        for _, _, data in records:
            event = json.loads(data)
            if event.get("op") == "insert":
                ids.add(event["after"]["id"])
    return ids


def role_config(tmp_path, duration_s):
    """A profile that assumes a role with the keys of another profile."""
    config = tmp_path / "config"
    config.write_text(
        "[profile base]\nregion = us-east-1\n\n"
        "[profile ci]\nrole_arn = %s\nsource_profile = base\n"
        "role_session_name = pgspout-test\nduration_seconds = %d\n"
        % (ROLE_ARN, duration_s))
    creds = tmp_path / "credentials"
    creds.write_text("[base]\naws_access_key_id = %s\n"
                     "aws_secret_access_key = %s\n" % (BASE_KEY, BASE_SECRET))
    return dict(AWS_CONFIG_FILE=str(config),
                AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_PROFILE="ci")


def assert_no_secrets(aws, *texts):
    for secret in aws.issued.secrets() + [BASE_SECRET]:
        for text in texts:
            assert secret not in text, "a secret was logged"


def test_assume_role_credentials_renewed_during_a_stream(db, pgspout, aws,
                                                         kinesalite, tmp_path):
    """Credentials that expire every 30 s, from AssumeRole signed with the
    source profile's keys: renewed in the background before they lapse, so
    a stream of STREAM_SECONDS never sends lapsed credentials, never
    stops, and loses nothing."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    stream = new_stream(kinesalite)
    env = base_env(tmp_path, aws, **role_config(tmp_path, 30))
    proc = pgspout.spawn("-v", *args(db, stream), env=env)
    wait_until(lambda: db.slot_info(db.name)["active"] or
               proc.poll() is not None, what="streaming")
    n, end = 0, time.monotonic() + STREAM_SECONDS
    while time.monotonic() < end:
        db.psql("insert into t values (%d), (%d);" % (n + 1, n + 2))
        n += 2
        assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
        time.sleep(0.5)
    wait_until(lambda: len(inserted_ids(kinesalite, stream)) >= n,
               timeout=120, what="every row in the stream")
    assert proc.poll() is None, pgspout.stderr_of(proc)[-4000:]
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]
    log = pgspout.stderr_of(proc)
    assert inserted_ids(kinesalite, stream) == set(range(1, n + 1))
    # Only fresh, issued credentials reached Kinesis.
    assert aws.kinesis.rejected == [], aws.kinesis.rejected
    used = {akid for akid, _ in aws.kinesis.accepted}
    assert all(aws.issued.get(k)["by"] == "sts:AssumeRole" for k in used)
    # Renewed at half of each set's 30 s: several sets signed requests.
    assert len(used) >= STREAM_SECONDS // 15, used
    # Each AssumeRole was signed with the source profile's keys.
    calls = aws.sts.calls
    assert calls and all(c["action"] == "AssumeRole" and
                         c["signed_by"] == BASE_KEY and c["duration"] == "30"
                         for c in calls), calls
    assert "role_arn" in log  # the start-up line names the source
    assert_no_secrets(aws, log)


def test_expired_token_answer_fetches_new_credentials(db, pgspout, aws,
                                                      kinesalite, tmp_path):
    """Web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, one-hour
    credentials): Kinesis answering ExpiredTokenException makes the sink
    fetch a new set and send the records again, without stopping."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    stream = new_stream(kinesalite)
    token_file = tmp_path / "web-identity-token"
    token_file.write_text("eyJ-test-web-identity-token\n")
    env = base_env(tmp_path, aws, AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file),
                   AWS_ROLE_ARN=ROLE_ARN)
    db.psql("insert into t select generate_series(1, 5);")
    aws.kinesis.expire_next = 2
    r = pgspout.run("-v", *args(db, stream, "--endpos", db.current_lsn()),
                    env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert inserted_ids(kinesalite, stream) == {1, 2, 3, 4, 5}
    assert [e for _, e in aws.kinesis.rejected] == \
        ["ExpiredTokenException"] * 2
    first_rejected = aws.kinesis.rejected[0][0]
    assert any(k != first_rejected for k, _ in aws.kinesis.accepted), \
        "the rejected credentials were used again"
    assert len(aws.sts.calls) >= 2
    assert all(c["action"] == "AssumeRoleWithWebIdentity" and
               c["web_identity_token"] == "eyJ-test-web-identity-token"
               and c["signed_by"] is None for c in aws.sts.calls)
    assert "ExpiredTokenException" in r.stderr
    assert_no_secrets(aws, r.stderr)


def test_sts_down_the_sink_waits_and_says_so(db, pgspout, aws, kinesalite,
                                             tmp_path):
    """STS down from the start: records wait (nothing confirmed, nothing
    dropped), /ready names the sink retrying, the log says why; once STS
    answers, everything arrives and the sink is ready again."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    stream = new_stream(kinesalite)
    aws.sts.failing = True
    env = base_env(tmp_path, aws, **role_config(tmp_path, 900))
    port = free_port()
    proc = spawn_streaming(pgspout, db, port, *args(db, stream)[4:], env=env)
    db.psql("insert into t select generate_series(1, 10);")
    after_insert = lsn_to_int(db.current_lsn())
    wait_until(lambda: "sink_retrying" in (reasons(port) or []), timeout=60,
               what="/ready naming the sink retrying")
    log = pgspout.stderr_of(proc)
    assert "cannot obtain AWS credentials" in log and "HTTP 503" in log, log
    assert proc.poll() is None
    # Idle positions may be confirmed (other databases write WAL too),
    # never the rows' commit.
    assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) < \
        after_insert
    assert aws.kinesis.accepted == []
    aws.sts.failing = False
    wait_until(lambda: inserted_ids(kinesalite, stream) ==
               set(range(1, 11)), timeout=120, what="the rows after STS")
    wait_until(lambda: reasons(port) == [], timeout=60, what="ready again")
    assert pgspout.stop(proc) == 0, pgspout.stderr_of(proc)[-4000:]
    assert aws.kinesis.rejected == []
    assert_no_secrets(aws, pgspout.stderr_of(proc))


def test_instance_metadata_over_imdsv2(db, pgspout, aws, kinesalite,
                                       tmp_path):
    """Nothing else configured: EC2 instance metadata at
    AWS_EC2_METADATA_SERVICE_ENDPOINT, a session token first, every
    metadata read carrying it."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    stream = new_stream(kinesalite)
    imds = aws_support.ImdsServer(aws.issued)
    aws.servers.append(imds)
    env = base_env(tmp_path, aws, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    del env["AWS_EC2_METADATA_DISABLED"]
    db.psql("insert into t select generate_series(1, 3);")
    r = pgspout.run(*args(db, stream, "--endpos", db.current_lsn()), env=env,
                    timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert inserted_ids(kinesalite, stream) == {1, 2, 3}
    assert imds.requests[0][:2] == ("PUT", "/latest/api/token")
    gets = [q for q in imds.requests if q[0] == "GET"]
    assert gets and all(token in imds.tokens for _, _, token in gets)
    used = {k for k, _ in aws.kinesis.accepted}
    assert used and all(aws.issued.get(k)["by"] == "imds" for k in used)
    assert aws.kinesis.rejected == []
    assert_no_secrets(aws, r.stderr)


def test_imdsv1_is_not_used_unless_asked(db, pgspout, aws, kinesalite,
                                         tmp_path):
    """A metadata service without IMDSv2 (the token PUT refused): the sink
    does not fall back to tokenless reads and says so; with
    imds_v1_fallback = true it does."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    stream = new_stream(kinesalite)
    imds = aws_support.ImdsServer(aws.issued, v2=False)
    aws.servers.append(imds)
    env = base_env(tmp_path, aws, AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
    del env["AWS_EC2_METADATA_DISABLED"]
    db.psql("insert into t select generate_series(1, 3);")
    endpos = db.current_lsn()
    r = pgspout.run(*args(db, stream, "--endpos", endpos), env=env,
                    timeout=120)
    assert r.returncode == 1, r.stderr[-4000:]
    assert "no AWS credentials" in r.stderr
    assert "IMDSv2 token" in r.stderr and "HTTP 405" in r.stderr, r.stderr
    assert [q[0] for q in imds.requests] == ["PUT"], imds.requests
    r = pgspout.run(*args(db, stream, "--endpos", endpos,
                          "-o", "imds_v1_fallback=true"), env=env,
                    timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert inserted_ids(kinesalite, stream) == {1, 2, 3}
    assert any(q[0] == "GET" and q[2] is None for q in imds.requests)


def test_container_credentials(db, pgspout, aws, kinesalite, tmp_path):
    """AWS_CONTAINER_CREDENTIALS_FULL_URI with the authorization token
    read from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (EKS Pod Identity)."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    stream = new_stream(kinesalite)
    auth = "container-auth-TOKEN-value"
    server = aws_support.ContainerServer(aws.issued, auth)
    aws.servers.append(server)
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text(auth + "\n")
    env = base_env(tmp_path, aws,
                   AWS_CONTAINER_CREDENTIALS_FULL_URI=server.url + "/creds",
                   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file))
    db.psql("insert into t select generate_series(1, 3);")
    r = pgspout.run("-v", *args(db, stream, "--endpos", db.current_lsn()),
                    env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert inserted_ids(kinesalite, stream) == {1, 2, 3}
    assert server.requests and all(a == auth for _, _, a in server.requests)
    used = {k for k, _ in aws.kinesis.accepted}
    assert used and all(aws.issued.get(k)["by"] == "container" for k in used)
    assert auth not in r.stderr
    assert_no_secrets(aws, r.stderr)


def test_credential_process(db, pgspout, aws, kinesalite, tmp_path):
    """A profile's credential_process: its JSON document's keys sign the
    requests."""
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    stream = new_stream(kinesalite)
    expiration = time.time() + 3600
    aws.issued.add("AKIDPROCESS0001", "processSECRET/1", "processTOKEN1",
                   expiration, "process")
    script = tmp_path / "creds.sh"
    script.write_text("#!/bin/sh\ncat <<'END'\n%s\nEND\n" % json.dumps({
        "Version": 1, "AccessKeyId": "AKIDPROCESS0001",
        "SecretAccessKey": "processSECRET/1", "SessionToken": "processTOKEN1",
        "Expiration": aws_support.iso(expiration)}))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-east-1\n"
                      "[profile proc]\ncredential_process = %s --flag\n"
                      % script)
    env = base_env(tmp_path, aws, AWS_CONFIG_FILE=str(config),
                   AWS_PROFILE="proc")
    db.psql("insert into t select generate_series(1, 3);")
    r = pgspout.run("-v", *args(db, stream, "--endpos", db.current_lsn()),
                    env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert inserted_ids(kinesalite, stream) == {1, 2, 3}
    assert {k for k, _ in aws.kinesis.accepted} == {"AKIDPROCESS0001"}
    assert "credential_process" in r.stderr
    assert_no_secrets(aws, r.stderr)


BAD = [
    # (files {name: text}, environment, options, expected message parts)
    ({}, {"AWS_WEB_IDENTITY_TOKEN_FILE": "{tmp}/missing-token",
          "AWS_ROLE_ARN": ROLE_ARN}, [],
     ["web identity token file", "{tmp}/missing-token"]),
    ({"config": "[profile x\nregion = us-east-1\n"}, {}, [],
     ["{tmp}/config:1: malformed section header"]),
    ({"config": "[default]\nregion = us-east-1\nthis is not a setting\n"},
     {}, [], ["{tmp}/config:3: expected \"key = value\""]),
    ({"config": "[default]\n"}, {"AWS_PROFILE": "nope"}, [],
     ["profile \"nope\" (AWS_PROFILE)", "{tmp}/config"]),
    ({"config": "[default]\n"}, {}, ["-o", "profile=nope"],
     ["profile \"nope\" (the profile option)"]),
    ({"config": "[profile r]\nregion = us-east-1\nrole_arn = %s\n"
      % ROLE_ARN}, {"AWS_PROFILE": "r"}, [],
     ["{tmp}/config:3: role_arn of profile [r] needs source_profile"]),
    ({"config": "[profile r]\nrole_arn = %s\nsource_profile = ghost\n"
      % ROLE_ARN}, {"AWS_PROFILE": "r"}, [],
     ["{tmp}/config:3: source_profile \"ghost\" of profile [r] does not "
      "exist"]),
    ({"credentials": "[half]\naws_access_key_id = AKIDHALF\n"},
     {"AWS_PROFILE": "half"}, [],
     ["credentials:2: profile [half] has aws_access_key_id but not "
      "aws_secret_access_key"]),
]


@pytest.mark.parametrize("files,environ,options,expected", BAD)
def test_bad_configuration(db, pgspout, aws, tmp_path, files, environ,
                           options, expected):
    """A configuration that cannot work stops the start with a message
    naming the file, line and key (or the variable); nothing is sent."""
    db.create_slot(db.name)
    env = base_env(tmp_path, aws, AWS_CONFIG_FILE=str(tmp_path / "config"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env.update({k: v.format(tmp=tmp_path) for k, v in environ.items()})
    r = pgspout.run(*args(db, "never", *options, "--endpos",
                          db.current_lsn()), env=env, timeout=60)
    # The host starts sinks once connected and stops with 1 when one
    # cannot start.
    assert r.returncode == 1, r.stderr[-4000:]
    for part in expected:
        assert part.format(tmp=tmp_path) in r.stderr, r.stderr[-4000:]
    assert aws.kinesis.accepted == [] and aws.sts.calls == []

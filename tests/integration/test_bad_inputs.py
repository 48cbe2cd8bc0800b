"""Bad input is refused before anything connects: every file of the bad
config corpus (tests/corpus/bad-config) and every broken sink shared object
makes pgspout exit 2 with a message that names what is wrong, while the
connection string points at a port where nothing listens (a connection
attempt would exit 1 instead).

Each corpus file says in its header comments what it expects:

  # expect-line: N        the line the message must name ("FILE:N:")
  # expect-file: NAME     the file named, when not the corpus file itself
                          (an @include'd one, next to it)
  # expect-key: KEY       the setting path the message must name
  # expect-text: TEXT     a fragment of the reason
  # secret: VALUE         a value that must appear nowhere in the output
"""

import glob
import os
import re
import resource
import shutil
import socket
import threading
import subprocess

import pytest

CORPUS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..",
                                      "corpus", "bad-config"))
CONFIG_FILES = sorted(glob.glob(os.path.join(CORPUS, "*.conf")))
DEAD_DBNAME = "spoutdb"


def read_expectations(path):
    meta = {"secret": []}
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace")
            m = re.match(r"# (expect-line|expect-file|expect-key|expect-text"
                         r"|secret): (.*?)\s*$", line)
            if not m:
                if line.startswith("#"):
                    continue
                break
            if m.group(1) == "secret":
                meta["secret"].append(m.group(2))
            else:
                meta[m.group(1)] = m.group(2)
    return meta


@pytest.fixture(scope="module")
def dead_port():
    """A port bound but never listened on: a connection to it is refused
    at once, and no other process can take the port meanwhile."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


def dead_conninfo(port):
    return "host=127.0.0.1 port=%d dbname=%s user=spout connect_timeout=3" \
        % (port, DEAD_DBNAME)


def clean_env():
    """No PG* variables from the caller, so the corpus alone decides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")
            or k.startswith("PGSPOUT")}


def assert_refused_before_connecting(r):
    out = r.stdout + r.stderr
    assert r.returncode == 2, "exit %d (1 means it tried to connect):\n%s" % (
        r.returncode, out)
    assert "connection failed" not in out and "Connection refused" not in out


def test_corpus_is_large_enough():
    assert len(CONFIG_FILES) >= 40, CONFIG_FILES
    for path in CONFIG_FILES:
        meta = read_expectations(path)
        assert "expect-line" in meta, "%s has no expect-line header" % path
        assert "expect-key" in meta or "expect-text" in meta, path


@pytest.mark.parametrize("path", CONFIG_FILES,
                         ids=[os.path.basename(p)[:-5] for p in CONFIG_FILES])
def test_bad_config(pgspout, dead_port, path):
    meta = read_expectations(path)
    r = pgspout.run("-c", path, "-d", dead_conninfo(dead_port), timeout=30,
                    env=clean_env())
    assert_refused_before_connecting(r)
    named = path
    if "expect-file" in meta:
        named = os.path.join(CORPUS, meta["expect-file"])
    location = "%s:%s:" % (named, meta["expect-line"])
    assert location in r.stderr, "expected %r in:\n%s" % (location, r.stderr)
    if "expect-key" in meta:
        # The key comes after the location, on the same line.
        after = r.stderr.split(location, 1)[1].split("\n", 1)[0]
        assert meta["expect-key"] in after, "key %r not named in:\n%s" % (
            meta["expect-key"], r.stderr)
    if "expect-text" in meta:
        assert meta["expect-text"] in r.stderr, r.stderr
    for secret in meta["secret"]:
        assert secret not in r.stderr + r.stdout, \
            "secret %r echoed:\n%s" % (secret, r.stderr)


def test_bad_config_relative_path(pgspout, dead_port, tmp_path):
    """The same refusal when the file is given by a relative path: the
    message names the file as given, and @include is resolved next to the
    file, not in the working directory."""
    shutil.copy(os.path.join(CORPUS, "include-bad-content.conf"),
                tmp_path / "rel.conf")
    shutil.copy(os.path.join(CORPUS, "included-unknown-key.inc"), tmp_path)
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    pgspout.workdir = str(sub)
    r = pgspout.run("-c", "../rel.conf", "-d", dead_conninfo(dead_port),
                    timeout=30, env=clean_env())
    assert_refused_before_connecting(r)
    assert "included-unknown-key.inc:2:" in r.stderr, r.stderr
    assert "bogus_included" in r.stderr


# ---- broken sink shared objects ----

# The variants of tests/unit/sinks/abi_variant.c and the refusal of each.
BROKEN_SINKS = [
    ("bad_magic", "bad magic number 0xDEADBEEF"),
    ("other_major", "incompatible ABI major version: sink built for ABI 2.7, "
                    "this pgspout provides ABI 1.7"),
    ("newer_minor", "sink needs a newer host: sink built for ABI 1.8, this "
                    "pgspout provides ABI 1.7"),
    ("short_descriptor", "descriptor size 16 is smaller"),
    ("missing_flush", "missing required callback 'flush'"),
    ("no_entry", "does not export pgspout_sink_entry()"),
    ("bad_prefix", "prefix option 'lib' must end with '.'"),
]


@pytest.fixture(scope="module")
def variant_dir():
    sink_dir = os.environ.get("PGSPOUT_TEST_SINK_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "release", "tests",
        "sinks")
    # The variants are built next to the unit tests: <builddir>/tests/unit.
    unit = os.path.abspath(os.path.join(sink_dir, "..", "unit"))
    if not os.path.exists(os.path.join(unit, "pgspout_good.so")):
        pytest.fail("ABI test sinks not built in %s (set "
                    "PGSPOUT_TEST_SINK_DIR=<builddir>/tests/sinks)" % unit)
    return unit


def run_sink(pgspout, port, sink, *extra):
    return pgspout.run("-d", dead_conninfo(port), "--slot", "s",
                       "--sink", sink, *extra, timeout=30, env=clean_env())


@pytest.mark.parametrize("variant", ["good", "older_minor"])
def test_good_variant_is_loaded(pgspout, dead_port, variant_dir, variant):
    """The control: the well-formed variants (one built for ABI 1.0, which
    a newer minor must keep loading) are accepted, so pgspout goes on to
    connect, and that fails (exit 1). The refusals below are therefore the
    loader's, not the harness's."""
    r = run_sink(pgspout, dead_port, os.path.join(
        variant_dir, "pgspout_%s.so" % variant))
    assert r.returncode == 1, (r.returncode, r.stderr)


@pytest.mark.parametrize("variant,message", BROKEN_SINKS,
                         ids=[v for v, _ in BROKEN_SINKS])
def test_broken_sink_refused(pgspout, dead_port, variant_dir, variant,
                             message):
    path = os.path.join(variant_dir, "pgspout_%s.so" % variant)
    r = run_sink(pgspout, dead_port, path)
    assert_refused_before_connecting(r)
    assert message in r.stderr, r.stderr
    assert path in r.stderr, "the file is not named:\n" + r.stderr


def test_sink_refusing_its_options_without_a_reason(pgspout, dead_port,
                                                   variant_dir):
    """check_options (ABI 1.7) said no and nothing else: still a usage
    error, at the sink's place, with a message."""
    path = os.path.join(variant_dir, "pgspout_silent_refusal.so")
    r = run_sink(pgspout, dead_port, path)
    assert_refused_before_connecting(r)
    assert "command line: --sink %s: refused by the sink (no reason " \
        "given)" % path in r.stderr, r.stderr


@pytest.mark.parametrize("variant,message", BROKEN_SINKS[:2],
                         ids=[v for v, _ in BROKEN_SINKS[:2]])
def test_broken_sink_from_config(pgspout, dead_port, variant_dir, tmp_path,
                                 variant, message):
    """Through a config file the refusal also names the file and line."""
    cfg = tmp_path / "plugin.conf"
    cfg.write_text('sinks = (\n  { name = "x";\n    type = "%s"; }\n);\n'
                   % os.path.join(variant_dir, "pgspout_%s.so" % variant))
    r = pgspout.run("-c", str(cfg), "-d", dead_conninfo(dead_port),
                    timeout=30, env=clean_env())
    assert_refused_before_connecting(r)
    assert re.search(re.escape(str(cfg)) + r":2: sinks\.\[0\]\.type: ",
                     r.stderr), r.stderr
    assert message in r.stderr


def test_text_file_is_not_a_shared_object(pgspout, dead_port, tmp_path):
    path = tmp_path / "pgspout_text.so"
    path.write_text("this is not ELF\n")
    r = run_sink(pgspout, dead_port, str(path))
    assert_refused_before_connecting(r)
    assert "not a shared object (no ELF header)" in r.stderr, r.stderr


def test_truncated_elf_is_refused(pgspout, dead_port, variant_dir, tmp_path):
    """An ELF header with nothing behind it (an interrupted copy)."""
    with open(os.path.join(variant_dir, "pgspout_good.so"), "rb") as f:
        head = f.read(200)
    path = tmp_path / "pgspout_cut.so"
    path.write_bytes(head)
    r = run_sink(pgspout, dead_port, str(path))
    assert_refused_before_connecting(r)
    assert str(path) in r.stderr, r.stderr


def test_empty_file_is_refused(pgspout, dead_port, tmp_path):
    path = tmp_path / "pgspout_empty.so"
    path.write_bytes(b"")
    r = run_sink(pgspout, dead_port, str(path))
    assert_refused_before_connecting(r)
    assert "not a shared object" in r.stderr, r.stderr


def test_directory_is_refused(pgspout, dead_port, tmp_path):
    path = tmp_path / "pgspout_dir.so"
    path.mkdir()
    r = run_sink(pgspout, dead_port, str(path))
    assert_refused_before_connecting(r)
    assert str(path) in r.stderr, r.stderr


def test_relative_sink_path_is_refused(pgspout, dead_port, variant_dir):
    rel = os.path.relpath(os.path.join(variant_dir, "pgspout_good.so"),
                          pgspout.workdir)
    r = run_sink(pgspout, dead_port, rel)
    assert_refused_before_connecting(r)
    assert "relative path" in r.stderr, r.stderr


def test_broken_sink_in_plugin_dir_is_refused_by_name(pgspout, dead_port,
                                                      variant_dir):
    """Found by name through --plugin-dir, the refusal is the same."""
    r = run_sink(pgspout, dead_port, "other_major", "--plugin-dir",
                 variant_dir)
    assert_refused_before_connecting(r)
    assert "incompatible ABI major version" in r.stderr, r.stderr


# ---- connection option values libpq checks only when connecting ----

class CountingListener:
    """A TCP port that accepts connections and counts them (closing each at
    once), so a test can tell that nothing tried to connect."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    server = CountingListener()
    yield server
    server.close()


PASSWORD = "Conn-PW-7731"

# (option as written, the option and value the message must name)
BAD_OPTION_VALUES = [
    ("sslmode=bogus", "sslmode", "bogus"),
    ("gssencmode=always", "gssencmode", "always"),
    ("channel_binding=yes", "channel_binding", "yes"),
    ("target_session_attrs=master", "target_session_attrs", "master"),
    ("ssl_min_protocol_version=TLSv9", "ssl_min_protocol_version", "TLSv9"),
    ("connect_timeout=10s", "connect_timeout", "10s"),
    ("keepalives=yes", "keepalives", "yes"),
    ("keepalives_idle=soon", "keepalives_idle", "soon"),
    ("tcp_user_timeout=1.5", "tcp_user_timeout", "1.5"),
]


def listener_conninfo(listener, extra=""):
    return ("host=127.0.0.1 port=%d dbname=%s user=spout password=%s %s"
            % (listener.port, DEAD_DBNAME, PASSWORD, extra)).strip()


def assert_option_refused(r, listener, keyword, value):
    out = r.stdout + r.stderr
    assert r.returncode == 2, "exit %d:\n%s" % (r.returncode, out)
    assert listener.accepted == 0, "a connection was attempted:\n" + out
    assert 'connection option %s' % keyword in r.stderr, r.stderr
    assert 'invalid value "%s"' % value in r.stderr, r.stderr
    assert PASSWORD not in out and "host=127.0.0.1" not in out, out


def test_counting_listener_sees_a_connection(pgspout, listener):
    """The control: with valid options pgspout does connect (and fails on
    this fake server), so a count of 0 below means no attempt."""
    r = pgspout.run("-d", listener_conninfo(listener, "sslmode=disable"),
                    "--sink", "file", "-o", "path=-", timeout=30,
                    env=clean_env())
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert listener.accepted >= 1


@pytest.mark.parametrize("retry", [False, True], ids=["once", "retry"])
@pytest.mark.parametrize("option,keyword,value", BAD_OPTION_VALUES,
                         ids=[o.split("=")[0] for o, _, _ in
                              BAD_OPTION_VALUES])
def test_bad_option_value_is_a_usage_error(pgspout, listener, option,
                                           keyword, value, retry):
    args = ["-d", listener_conninfo(listener, option), "--sink", "file",
            "-o", "path=-"] + (["--retry-initial"] if retry else [])
    r = pgspout.run(*args, timeout=30, env=clean_env())
    assert_option_refused(r, listener, keyword, value)


@pytest.mark.parametrize("retry", [False, True], ids=["once", "retry"])
@pytest.mark.parametrize("variable,keyword", [
    ("PGSSLMODE", "sslmode"), ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs")])
def test_bad_option_value_from_environment(pgspout, listener, variable,
                                           keyword, retry):
    env = dict(clean_env(), **{variable: "bogus"})
    args = ["-d", listener_conninfo(listener), "--sink", "file",
            "-o", "path=-"] + (["--retry-initial"] if retry else [])
    r = pgspout.run(*args, timeout=30, env=env)
    assert_option_refused(r, listener, keyword, "bogus")
    assert "environment variable %s" % variable in r.stderr, r.stderr


def test_ports_not_matching_hosts(pgspout, listener):
    conninfo = listener_conninfo(listener).replace(
        "port=%d" % listener.port, "port=%d,%d" % (listener.port,
                                                   listener.port))
    r = pgspout.run("-d", conninfo, "--sink", "file", "-o", "path=-",
                    "--retry-initial", timeout=30, env=clean_env())
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert listener.accepted == 0
    assert "2 port numbers for 1 host" in r.stderr, r.stderr


def test_bad_option_value_in_config_file(pgspout, listener, tmp_path):
    """From the config file's connection, the message names file and line
    (and -d is not given, so the file's value is the one used)."""
    cfg = tmp_path / "conn.conf"
    cfg.write_text('retry_initial = true;\nconnection = "%s";\nsinks = ({ '
                   'name = "o"; type = "file"; options = { path = "-"; }; });\n'
                   % listener_conninfo(listener, "port=12ab"))
    r = pgspout.run("-c", str(cfg), timeout=30, env=clean_env())
    assert_option_refused(r, listener, "port", "12ab")
    assert "%s:2: connection: " % cfg in r.stderr, r.stderr


# ---- option values a sink judges (check_options, ABI 1.7) ----

# (sink, its options, the option at fault, a fragment of the reason, a
# secret that must not be echoed or None). The values pass the option
# tables (type, choices) and only the sink can tell they are wrong.
SINK_OPTION_FAULTS = [
    ("webhook", ["url=http://127.0.0.1:9", "secret=whsec_Sec*ret!9"],
     "secret", "is not a base64 key", "Sec*ret!9"),
    ("webhook", ["url=http://127.0.0.1:9", "secret=K3yW1thoutPrefix0="],
     "secret", "must be whsec_", "K3yW1thoutPrefix0="),
    ("webhook", ["url=ftp://127.0.0.1:9"], "url", "http:// or https://",
     None),
    ("webhook", ["url=http://127.0.0.1:9", "headers=Authorization: tok-77"],
     "headers", "is set by the sink itself", "tok-77"),
    ("elastic", ["url=http://127.0.0.1:9", "index={nope}"], "index",
     "{nope}", None),
    ("elastic", ["url=http://127.0.0.1:9", "api_key=AK-991",
                 "username=u", "password=PW-992"],
     "api_key", "not both", "AK-991"),
    ("kafka", ["brokers=127.0.0.1:9", "kafka.acks=1"], "kafka.acks",
     "not accepted", None),
    ("kafka", ["brokers=127.0.0.1:9", "kafka.no.such.thing=1"],
     "kafka.no.such.thing", "No such configuration property", None),
    ("kafka", ["brokers=127.0.0.1:9", "kafka.sasl.password=PW-993",
               "kafka.linger.ms=soon"],
     "kafka.linger.ms", "Invalid value", "PW-993"),
    ("kinesis", ["stream=s", "partition_key=" + "k" * 300], "partition_key",
     "longer than 256 characters", None),
    ("bigquery", ["project=p", "dataset=d", "table=x_{table}",
                  "view=x_{table}"], "view", "must differ", None),
]


@pytest.mark.parametrize("sink,options,option,reason,secret",
                         SINK_OPTION_FAULTS,
                         ids=["%s-%s" % (f[0], f[2]) for f in
                              SINK_OPTION_FAULTS])
def test_sink_option_value_is_a_usage_error(pgspout, listener, sink, options,
                                            option, reason, secret):
    """A value the sink refuses is a configuration error like the host's
    own: exit 2 before any connection, naming where the value came from."""
    args = ["-d", listener_conninfo(listener), "--sink", sink]
    for o in options:
        args += ["-o", o]
    r = pgspout.run(*args, timeout=30, env=clean_env())
    out = r.stdout + r.stderr
    assert r.returncode == 2, "exit %d:\n%s" % (r.returncode, out)
    assert listener.accepted == 0, "a connection was attempted:\n" + out
    assert "pgspout: command line: -o %s: " % option in r.stderr, r.stderr
    assert reason in r.stderr, r.stderr
    assert secret is None or secret not in out, out


def run_webhook_config(pgspout, listener, tmp_path, option_line):
    """A config file whose webhook sink has a url and option_line (its
    line 7); the run must stop with exit 2 before connecting."""
    cfg = tmp_path / "hook.conf"
    cfg.write_text('connection = "%s";\nsinks = ({\n  name = "hook";\n'
                   '  type = "webhook";\n  options = {\n'
                   '    url = "http://127.0.0.1:9";\n    %s\n  };\n});\n'
                   % (listener_conninfo(listener), option_line))
    r = pgspout.run("-c", str(cfg), timeout=30, env=clean_env())
    assert r.returncode == 2, r.stderr
    assert listener.accepted == 0
    return str(cfg), r


def test_sink_option_fault_named_by_file_and_line(pgspout, listener,
                                                  tmp_path):
    cfg, r = run_webhook_config(pgspout, listener, tmp_path,
                                'secret = "whsec_Sec*ret!9";')
    assert "%s:7: sinks.[0].options.secret: " % cfg in r.stderr, r.stderr
    assert "Sec*ret" not in r.stdout + r.stderr


def test_sink_option_fault_in_an_option_not_given(pgspout, listener,
                                                  tmp_path):
    """A fault that lies in a missing partner option names the sink's
    place and the option."""
    cfg, r = run_webhook_config(pgspout, listener, tmp_path,
                                'username = "u";')
    assert re.search(r"%s:\d+: sinks\.\[0\]: option password: username "
                     r"and password go together" % re.escape(cfg),
                     r.stderr), r.stderr


# ---- table patterns too complex to compile ----

# Patterns whose expansion glibc's regcomp() would need gigabytes for (3.4
# GB and 10 s for the first; the others more, or a crash of its recursive
# parser for the last); PostgreSQL itself calls each "too complex".
TOO_COMPLEX = [
    "((a{255}){255}){255}",
    "(((a{255}){255}){255}){255}",
    "(" + "|".join("table_%d" % i for i in range(4000)) + ")",
    "(" * 20 + "a" + ")+" * 20,
    "(" * 50000 + "a" + ")" * 50000,
]

ADDRESS_SPACE_LIMIT = 512 * 1024 * 1024


def sanitizer_build(binary):
    """ASan reserves terabytes of address space for its shadow memory, so
    an address-space limit would stop the binary before main(). The binary
    under test may be a wrapper script (tests/pgspout-streaming-off) beside
    the real pgspout, which is what ldd must look at."""
    real = os.path.join(os.path.dirname(binary), "pgspout")
    r = subprocess.run(["ldd", real], capture_output=True, text=True)
    return "libasan" in r.stdout


@pytest.mark.parametrize("pattern", TOO_COMPLEX,
                         ids=["nested-3", "nested-4", "alternation-4000",
                              "plus-20", "depth-50000"])
def test_too_complex_pattern_refused(pgspout_bin, dead_port, tmp_path,
                                     pattern):
    """Refused as a usage error before compiling it or connecting, within
    512 MB of address space: without the limit check, regcomp() would fail
    for want of memory (or take the machine's), not say why."""
    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT,
                                                ADDRESS_SPACE_LIMIT))

    limited = not sanitizer_build(pgspout_bin)
    r = subprocess.run([pgspout_bin, "--list-tables", "-d",
                        dead_conninfo(dead_port), "-t", "orders", "-t",
                        pattern],
                       capture_output=True, text=True, timeout=120,
                       env=clean_env(), cwd=str(tmp_path),
                       preexec_fn=limit_memory if limited else None)
    assert_refused_before_connecting(r)
    assert "regular expression is too complex" in r.stderr, r.stderr
    assert "command line: -t: invalid include pattern: table pattern" \
        in r.stderr, r.stderr
    # a long pattern is shortened, never the reason
    assert pattern[:40] in r.stderr, r.stderr
    assert len(r.stderr) < 1000, r.stderr

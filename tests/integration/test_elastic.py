"""The elastic sink against a real OpenSearch node (elastic_server.py), and
against a small fake _bulk server for answers a healthy node does not give
(429, 5xx, per-item 400)."""

import base64
import http.server
import json
import os
import threading

import pytest

import elastic_server
import faults_support as fs
from json_http import JsonHandler
from messages_support import (MESSAGE_CONTENTS, contents, message_workload,
                              of_ops, position_id, wal_end)
from pgharness import lsn_to_int, read_jsonl

SECRET = "Sekr1t-elastic-XYZZY"


@pytest.fixture(scope="session")
def opensearch():
    yield from elastic_server.ElasticNode().session()


def sink_name():
    """The sink under test: PGSPOUT_ELASTIC_SINK (a path), else the sink the
    installed binary finds by name."""
    return os.environ.get("PGSPOUT_ELASTIC_SINK") or "elastic"


def run_elastic(pgspout, db, url, *options, slot=None, endpos=None,
                timeout=120):
    args = ["-d", db.conninfo, "--slot", slot or db.name,
            "--sink", sink_name(), "-o", "url=%s" % url]
    for o in options:
        args += ["-o", o]
    args += ["--endpos", endpos or db.current_lsn()]
    return pgspout.run(*args, timeout=timeout)


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def doc_id(key_values):
    """The sink's id scheme: one key column gives its value's text, several
    the compact JSON array of the values."""
    if len(key_values) == 1:
        v = key_values[0]
        return v if isinstance(v, str) else compact(v)
    return compact(key_values)


def table_rows(db, sql):
    """{doc id: row} from a query returning (key json array, row json)."""
    text = db.scalar("select coalesce(json_agg(json_build_array(key, row)),"
                     " '[]')::text from (%s) q" % sql)
    return {doc_id(k): row for k, row in json.loads(text)}


def strip_version(docs, field="_pgspout_version"):
    return {i: {k: v for k, v in src.items() if k != field}
            for i, (_, src) in docs.items()}


ITEMS_ROWS = """
    select json_build_array(id) as key,
           json_build_object('id', id, 'name', name, 'big', big,
                             'n', n::text, 'nums', nums, 'doc', doc) as row
    from items"""
PAIRS_ROWS = """
    select json_build_array(a, b) as key,
           json_build_object('a', a, 'b', b, 'v', v) as row
    from pairs"""
TRUNC_ROWS = """
    select json_build_array(id) as key, json_build_object('id', id, 'v', v) as row
    from trunc"""


def mixed_workload(db):
    db.psql("""
        create table items (id int primary key, name text, big text,
                            n numeric, nums int[], doc jsonb);
        alter table items alter column big set storage external;
        create table pairs (a int, b text, v int, primary key (a, b));
        create table trunc (id int primary key, v text);
    """)
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_replay', "
            "'pgoutput');" % db.name)
    db.psql("""
        insert into items
        select i, 'name' || i, repeat(md5(i::text), 300), i * 1.5,
               array[i, i + 1], jsonb_build_object('k', i)
        from generate_series(1, 40) i;
        insert into pairs select i % 5, 'b,' || i, i
        from generate_series(1, 30) i;
        insert into trunc select i, 'before' from generate_series(1, 10) i;
    """)
    db.psql("""
        -- unchanged TOAST: big is not sent with these updates
        update items set name = 'renamed' || id, n = n + 1 where id <= 20;
        begin;
        update items set name = 'twice' || id where id between 5 and 8;
        update items set doc = '{"k": 99}' where id between 5 and 6;
        commit;
        update items set big = repeat('z', 5000) where id in (3, 4);
        update items set id = id + 1000 where id in (9, 10);
        delete from items where id in (1, 2, 30);
        update pairs set v = v * 10 where a = 1;
        update pairs set b = b || '!' where a = 2;
        delete from pairs where a = 3;
        truncate trunc;
        insert into trunc values (1, 'after'), (42, 'after');
        update trunc set v = 'after2' where id = 1;
    """)


def check_index_matches(node, index, db, rows_sql):
    docs = node.documents(index)
    assert strip_version(docs) == table_rows(db, rows_sql)
    return docs


def test_mixed_workload_and_replay(db, pgspout, opensearch):
    mixed_workload(db)
    endpos = db.current_lsn()
    r = run_elastic(pgspout, db, opensearch.url, endpos=endpos)
    assert r.returncode == 0, r.stderr[-4000:]
    prefix = "public."
    items = check_index_matches(opensearch, prefix + "items", db, ITEMS_ROWS)
    pairs = check_index_matches(opensearch, prefix + "pairs", db, PAIRS_ROWS)
    trunc = check_index_matches(opensearch, prefix + "trunc", db, TRUNC_ROWS)
    assert len(items) == 37 and len(pairs) == 24 and set(trunc) == {"1", "42"}
    # The TOAST value survived the updates that did not send it, and those
    # documents carry the version of their last update.
    big = db.scalar("select big from items where id = 11")
    assert len(big) == 9600 and items["11"][1]["big"] == big
    assert items["11"][1]["_pgspout_version"] > 0
    assert "_pgspout_version" not in items["3"][1]  # re-indexed in full
    # External versions are WAL positions: later changes, higher versions.
    assert items["3"][0] > items["40"][0]
    # Composite ids are JSON arrays of the key values.
    assert '[1,"b,1!"]' not in pairs and '[2,"b,2!"]' in pairs

    # Replay: a second slot made before the workload streams all of it
    # again, into the same indices. Nothing changes, not even a version.
    r = run_elastic(pgspout, db, opensearch.url, slot=db.name + "_replay",
                    endpos=endpos)
    assert r.returncode == 0, r.stderr[-4000:]
    assert opensearch.documents(prefix + "items") == items
    assert opensearch.documents(prefix + "pairs") == pairs
    assert opensearch.documents(prefix + "trunc") == trunc

    # And the stream goes on from there.
    db.psql("update items set name = 'later' where id = 11;"
            "delete from pairs where a = 4;")
    r = run_elastic(pgspout, db, opensearch.url)
    assert r.returncode == 0, r.stderr[-4000:]
    items = check_index_matches(opensearch, prefix + "items", db, ITEMS_ROWS)
    assert items["11"][1]["big"] == big and items["11"][1]["name"] == "later"
    check_index_matches(opensearch, prefix + "pairs", db, PAIRS_ROWS)


def test_host_older_than_typed_columns_gives_the_same_documents(
        db, pgspout, opensearch):
    """The sink reads ids and key moves through typed column access (ABI
    1.6) and falls back to the JSON on an older host: a host API cut to
    1.5 (PGSPOUT_HOST_ABI_MINOR) must index exactly the same documents,
    versions included, from the same WAL."""
    mixed_workload(db)
    endpos = db.current_lsn()
    r = run_elastic(pgspout, db, opensearch.url, "index=typed.{table}",
                    endpos=endpos)
    assert r.returncode == 0, r.stderr[-4000:]
    older = dict(os.environ, PGSPOUT_HOST_ABI_MINOR="5")
    args = ["-d", db.conninfo, "--slot", db.name + "_replay", "--sink",
            sink_name(), "-o", "url=%s" % opensearch.url,
            "-o", "index=json.{table}", "--endpos", endpos]
    r = pgspout.run(*args, timeout=120, env=older)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "sinks get the host API of ABI 1.5" in r.stderr, r.stderr
    for table, rows_sql in (("items", ITEMS_ROWS), ("pairs", PAIRS_ROWS),
                            ("trunc", TRUNC_ROWS)):
        typed = check_index_matches(opensearch, "typed." + table, db,
                                    rows_sql)
        assert opensearch.documents("json." + table) == typed, table


def test_index_template_truncate_ignore_and_mapping_rejects(
        db, pgspout, opensearch, tmp_path):
    db.psql("create table Ev (id int primary key, v text);"
            'create table "Odd" (id int primary key, n int);')
    db.create_slot(db.name)
    index = "cdc-%s-ev" % db.name
    bad_index = "cdc-%s-odd" % db.name
    # n is mapped as a number by the first document; a later text value
    # is a mapping error: dead-lettered with the reason.
    opensearch.request("PUT", "/" + bad_index,
                       {"mappings": {"properties": {"n": {"type": "long"}}}})
    db.psql("insert into ev values (1, 'a'), (2, 'b');"
            "truncate ev;"
            "insert into ev values (3, 'c');"
            'insert into "Odd" values (1, 5);')
    db.psql('alter table "Odd" alter column n type text;'
            "insert into \"Odd\" values (2, 'not a number'), (3, '7');")
    dead = tmp_path / "dead.jsonl"
    r = run_elastic(pgspout, db, opensearch.url,
                    "index=cdc-%s-{table}" % db.name, "truncate=ignore",
                    "dead_letter=%s" % dead)
    assert r.returncode == 0, r.stderr[-4000:]
    docs = strip_version(opensearch.documents(index))
    assert docs == {"1": {"id": 1, "v": "a"}, "2": {"id": 2, "v": "b"},
                    "3": {"id": 3, "v": "c"}}
    odd = strip_version(opensearch.documents(bad_index))
    assert odd == {"1": {"id": 1, "n": 5}, "3": {"id": 3, "n": "7"}}
    lines = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len(lines) == 1
    assert "mapper_parsing_exception" in lines[0]["reason"]
    record = base64.b64decode(lines[0]["record"]["base64"])
    (action, meta, source), = parse_bulk(record)
    assert meta["_id"] == "2" and source == {"id": 2, "n": "not a number"}


def test_stops_without_confirming_on_rejection(db, pgspout, opensearch):
    db.psql("create table m (id int primary key, n text);")
    db.create_slot(db.name)
    index = "public.m"
    opensearch.delete_index(index)
    opensearch.request("PUT", "/" + index,
                       {"mappings": {"properties": {"n": {"type": "long"}}}})
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    db.psql("insert into m values (1, 'x');")
    r = run_elastic(pgspout, db, opensearch.url)
    assert r.returncode != 0
    assert "mapper_parsing_exception" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before


def test_no_replica_identity_goes_to_dead_letter(db, pgspout, opensearch,
                                                 tmp_path):
    db.psql("create table nokey (v text);")
    db.create_slot(db.name)
    db.psql("insert into nokey values ('x');")
    dead = tmp_path / "dead.jsonl"
    r = run_elastic(pgspout, db, opensearch.url, "dead_letter=%s" % dead)
    assert r.returncode == 0, r.stderr[-4000:]
    line = json.loads(dead.read_text())
    assert "replica-identity" in line["reason"]
    assert line["record"]["after"] == {"v": "x"}


# ---- a node that refuses large requests (http.max_content_length) ----

# Each row's _bulk action is about 1.2 kB: three fit in a request, a batch
# of them does not, and a row with a 6 kB value does not fit even alone.
SMALL_NODE_LIMIT = "4kb"
ROW_VALUE = 1000
TOO_BIG_VALUE = 6000
WIDE_ROWS = "select json_build_array(id) key, row_to_json(w) row from wide w"


@pytest.fixture(scope="module")
def small_opensearch():
    yield from elastic_server.ElasticNode(
        max_content_length=SMALL_NODE_LIMIT).session()


def big_rows_workload(db, small_opensearch, rows=40):
    """Rows that fit one by one, in one transaction (so in large batches),
    then updates of each, so every document has several changes whose order
    matters."""
    small_opensearch.delete_index("public.wide")
    db.psql("create table wide (id int primary key, v text, n int);")
    db.create_slot(db.name)
    db.psql("insert into wide select g, repeat('a', %d), 0 "
            "from generate_series(1, %d) g;" % (ROW_VALUE, rows))
    db.psql("update wide set v = repeat('b', %d), n = 1;" % ROW_VALUE)
    db.psql("update wide set n = 2 where id % 2 = 0;"
            "delete from wide where id % 5 = 0;")


def test_too_large_requests_are_split(db, pgspout, small_opensearch,
                                      tmp_path):
    big_rows_workload(db, small_opensearch)
    dead = tmp_path / "dead.jsonl"
    r = run_elastic(pgspout, db, small_opensearch.url,
                    "dead_letter=%s" % dead)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "refused as too large" in r.stderr  # the node really refused
    docs = check_index_matches(small_opensearch, "public.wide", db,
                               WIDE_ROWS)
    assert len(docs) == 32
    assert all(src["n"] == (2 if int(i) % 2 == 0 else 1)
               for i, (_, src) in docs.items())
    assert not dead.exists() or dead.read_text() == ""


def test_record_too_large_alone_goes_to_dead_letter(db, pgspout,
                                                    small_opensearch,
                                                    tmp_path):
    big_rows_workload(db, small_opensearch, rows=10)
    db.psql("insert into wide values (100, repeat('c', %d), 9);"
            % TOO_BIG_VALUE)
    db.psql("insert into wide values (101, 'after', 9);")
    dead = tmp_path / "dead.jsonl"
    r = run_elastic(pgspout, db, small_opensearch.url,
                    "dead_letter=%s" % dead)
    assert r.returncode == 0, r.stderr[-4000:]
    docs = strip_version(small_opensearch.documents("public.wide"))
    expected = table_rows(db, WIDE_ROWS + " where id <> 100")
    assert docs == expected and "101" in docs
    lines = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len(lines) == 1
    assert "HTTP 413" in lines[0]["reason"]
    assert "refused as too large on its own" in lines[0]["reason"]
    record = base64.b64decode(lines[0]["record"]["base64"])
    (action, meta, source), = parse_bulk(record)
    assert meta["_id"] == "100" and len(source["v"]) == TOO_BIG_VALUE


def test_record_too_large_alone_stops_without_dead_letter(
        db, pgspout, small_opensearch):
    big_rows_workload(db, small_opensearch, rows=10)
    r = run_elastic(pgspout, db, small_opensearch.url)
    assert r.returncode == 0, r.stderr[-4000:]
    before = db.current_lsn()
    db.psql("insert into wide values (100, repeat('c', %d), 9);"
            % TOO_BIG_VALUE)
    db.psql("insert into wide values (101, 'after', 9);")
    r = run_elastic(pgspout, db, small_opensearch.url)
    assert r.returncode != 0
    assert "refused as too large on its own" in r.stderr, r.stderr[-4000:]
    confirmed = db.slot_info(db.name)["confirmed_flush_lsn"]
    assert lsn_to_int(confirmed) <= lsn_to_int(before)
    # Other keys' changes may have been indexed (they are not ordered
    # behind it), but not confirmed: pgspout sends them again.
    assert "100" not in small_opensearch.documents("public.wide")


# ---- a fake _bulk server for what a healthy node does not answer ----

class FakeBulk(http.server.ThreadingHTTPServer):
    """Answers _bulk from a script: each entry is either an HTTP status for
    one whole request, or a function (action, meta, attempt) -> item status,
    where attempt counts the requests that carried that document so far. A
    function stays in force for every later request: how pgspout splits
    changes into requests depends on timing, and the script must not."""

    def __init__(self, script):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.script = list(script)
        self.requests = []  # (headers, [(action, meta, source)])
        self.answers = []  # (action, meta, item status), in answer order
        self.attempts = {}  # document id -> requests that carried it
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()
        self.thread.join()

    def items_seen(self):
        return [i for _, items in self.requests for i in items]


def parse_bulk(body):
    lines = [json.loads(x) for x in body.decode().split("\n") if x]
    items, i = [], 0
    while i < len(lines):
        (action, meta), = lines[i].items()
        source = None
        if action != "delete":
            source = lines[i + 1]
            i += 1
        items.append((action, meta, source))
        i += 1
    return items


class FakeHandler(JsonHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv = self.server
        items = parse_bulk(body)
        with srv.lock:
            srv.requests.append((dict(self.headers), items))
            if srv.script and isinstance(srv.script[0], int):
                step = srv.script.pop(0)
            elif srv.script:
                step = srv.script[0]
            else:
                step = lambda a, m, n: 201  # noqa: E731
            attempts = []
            for _, meta, _ in items:
                n = srv.attempts.get(meta["_id"], 0) + 1
                srv.attempts[meta["_id"]] = n
                attempts.append(n)
            if not isinstance(step, int):
                results = self.item_results(items, attempts, step)
        if isinstance(step, int):
            self.answer(step, {"error": "scripted"})
            return
        self.answer(200, {"errors": True, "items": results})

    def item_results(self, items, attempts, step):
        """Answers each item (the server's lock held, so that `answers`
        is the order a node applied them in)."""
        results = []
        for (action, meta, _), n in zip(items, attempts):
            status = step(action, meta, n)
            self.server.answers.append((action, meta, status))
            res = {"status": status}
            if status >= 300:
                res["error"] = {"type": "scripted_%d" % status,
                                "reason": "scripted failure"}
            results.append({action: res})
        return results


@pytest.fixture
def fake_bulk():
    servers = []

    def make(*script):
        srv = FakeBulk(script)
        servers.append(srv)
        return srv
    yield make
    for srv in servers:
        srv.close()


def small_workload(db, rows=6):
    db.psql("create table f (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into f select i, 'v' || i from generate_series(1, %d) i;"
            % rows)


FAST = ["retry_base=10ms", "retry_max=50ms", "linger=2s"]


def test_fake_retries_whole_request_failures(db, pgspout, fake_bulk):
    small_workload(db)
    srv = fake_bulk(503, 429, 500)
    r = run_elastic(pgspout, db, srv.url, *FAST, "username=u",
                    "password=" + SECRET)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "will be sent again" in r.stderr
    # What the three failed requests held was sent again, and in the end
    # every action went out in order with one version per document.
    failed = [m["_id"] for _, items in srv.requests[:3] for _, m, _ in items]
    later = [m["_id"] for _, items in srv.requests[3:] for _, m, _ in items]
    assert set(failed) <= set(later)
    assert sorted(set(later), key=int) == [str(i) for i in range(1, 7)]
    version_of = {}
    for action, m, _ in srv.items_seen():
        assert action == "index" and m["version_type"] == "external"
        assert version_of.setdefault(m["_id"], m["version"]) == m["version"]
    headers = srv.requests[0][0]
    assert headers["Content-Type"] == "application/x-ndjson"
    assert headers["Accept"] == "application/json"
    assert headers["Authorization"] == "Basic dTpTZWtyMXQtZWxhc3RpYy1YWVpaWQ=="
    assert SECRET not in r.stderr
    versions = [version_of[str(i)] for i in range(1, 7)]
    assert versions == sorted(versions) and len(set(versions)) == 6


def test_fake_retries_only_failed_items(db, pgspout, fake_bulk):
    small_workload(db)
    # Items 2 and 5 are throttled once; 3 already holds a newer version.
    srv = fake_bulk(lambda a, m, n: {"2": 429, "5": 503, "3": 409}.get(
        m["_id"], 201) if n == 1 else 201)
    r = run_elastic(pgspout, db, srv.url, *FAST, "api_key=" + SECRET)
    assert r.returncode == 0, r.stderr[-4000:]
    ids = [m["_id"] for _, m, _ in srv.items_seen()]
    # Each item once, plus one resend of each throttled one.
    assert sorted(ids, key=int) == ["1", "2", "2", "3", "4", "5", "5", "6"]
    assert "scripted_429" in r.stderr or "scripted_503" in r.stderr
    assert srv.requests[0][0]["Authorization"] == "ApiKey " + SECRET
    assert SECRET not in r.stderr


def test_fake_moved_row_waits_for_its_old_document(db, pgspout, fake_bulk):
    """An update that moves a row to another key deletes the old document.
    That delete waits for the old document's earlier writes, also while one
    of them is being retried: applied after it, the retried write would
    bring the moved-away row back wherever the node no longer remembers the
    delete (its tombstone lasts index.gc_deletes, and not across a
    restart). This fake node forgets at once: for each document, the write
    applied last must be its newest."""
    db.psql("create table f (id int primary key, v text);")
    db.create_slot(db.name)
    db.psql("insert into f values (1, 'a');")
    db.psql("update f set v = 'b' where id = 1;")
    db.psql("update f set id = 2 where id = 1;")
    refusals = {"left": 3}

    def step(action, meta, n):
        if action == "index" and meta["_id"] == "1" and refusals["left"]:
            refusals["left"] -= 1
            return 503
        return 201
    srv = fake_bulk(step)
    r = run_elastic(pgspout, db, srv.url, *FAST)
    assert r.returncode == 0, r.stderr[-4000:]
    assert refusals["left"] == 0
    applied = {}  # _id -> [(version, action)] in the order applied
    for action, meta, status in srv.answers:
        if status < 300:
            applied.setdefault(meta["_id"], []).append(
                (meta["version"], action))
    assert sorted(applied) == ["1", "2"]
    for doc, writes in applied.items():
        assert writes[-1] == max(writes), (doc, writes)
    assert applied["1"][-1][1] == "delete"
    assert applied["2"][-1][1] == "index"


def test_fake_item_rejection_dead_letter(db, pgspout, fake_bulk, tmp_path):
    small_workload(db)
    srv = fake_bulk(lambda a, m, n: 400 if m["_id"] == "4" else 201)
    dead = tmp_path / "dead.jsonl"
    end = db.current_lsn()
    r = run_elastic(pgspout, db, srv.url, *FAST, "dead_letter=%s" % dead,
                    endpos=end)
    assert r.returncode == 0, r.stderr[-4000:]
    assert sorted(m["_id"] for _, m, _ in srv.items_seen()) == \
        [str(i) for i in range(1, 7)]
    lines = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len(lines) == 1
    assert "HTTP 400 scripted_400: scripted failure" in lines[0]["reason"]
    assert lines[0]["sink"] == "elastic"
    # The record is the document's bulk action and source.
    record = base64.b64decode(lines[0]["record"]["base64"]).decode()
    (action, meta, source), = parse_bulk(record.encode())
    assert action == "index" and meta["_id"] == "4"
    assert source == {"id": 4, "v": "v4"}
    # Everything was acknowledged, the rejected record included.
    assert lsn_to_int(db.slot_info(db.name)["confirmed_flush_lsn"]) >= \
        lsn_to_int(end)


def test_fake_item_rejection_stops_without_confirming(db, pgspout,
                                                      fake_bulk):
    small_workload(db)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    srv = fake_bulk(lambda a, m, n: 400 if m["_id"] == "1" else 201)
    r = run_elastic(pgspout, db, srv.url, *FAST)
    assert r.returncode != 0
    assert "scripted_400" in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before


def test_fake_auth_failure_stops(db, pgspout, fake_bulk):
    small_workload(db, rows=1)
    before = db.slot_info(db.name)["confirmed_flush_lsn"]
    srv = fake_bulk(401)
    r = run_elastic(pgspout, db, srv.url, *FAST, "username=u",
                    "password=" + SECRET)
    assert r.returncode != 0
    assert "not authorised" in r.stderr and SECRET not in r.stderr
    assert db.slot_info(db.name)["confirmed_flush_lsn"] == before


# ---- read events: an initial snapshot under load ----

def test_initial_snapshot_under_load(db, pgspout, opensearch, tmp_path):
    """pgspout --create-slot copies tables with keys of every kind while a
    workload changes them, some transactions open across a chunk's read:
    each index equals its table row by row. Read events are indexed with
    version 1 (only where no document exists), so a change that commits
    after the copy of its row wins even when its LSN is the lower one."""
    import backfill_support as bs
    import snapshot_sinks
    index = "snap-%s-{table}" % db.name
    events = snapshot_sinks.run(db, pgspout, tmp_path, [
        ("search", sink_name(), {"url": opensearch.url, "index": index})])
    versions = []
    for table in bs.KEYS:
        docs = opensearch.documents(index.replace("{table}", table))
        snapshot_sinks.assert_index_equals_table(db, table, docs, events)
        versions += [v for v, _ in docs.values()]
    # Rows untouched since their copy still hold the read's version; the
    # others were written again by later changes.
    assert 1 in versions and max(versions) > 1


# ---- messages and transaction events (pgspout's messages and
# transaction_events): message events in an index of their own, begin and
# commit events in another when asked, each document the event as the file
# sink writes it; replays overwrite rather than duplicate; nothing of them
# when skipped or off.

BOTH = "messages = true;\ntransaction_events = true;"


def run_config(pgspout, db, tmp_path, slot, endpos, sinks, extra):
    conf = fs.write_config(str(tmp_path / ("%s.conf" % slot)), db, slot,
                           sinks, extra=extra)
    r = pgspout.run("-c", conf, "--endpos", endpos, timeout=180)
    assert r.returncode == 0, r.stderr[-4000:]


def by_position(events):
    return {position_id(e): e for e in events}


def sources(docs):
    return {i: src for i, (_, src) in docs.items()}


def test_messages_and_transactions_indexed_once(db, pgspout, opensearch,
                                                tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_replay', "
            "'pgoutput');" % db.name)
    endpos = message_workload(db)
    out = str(tmp_path / "out.jsonl")
    msg_index, txn_index = db.name + "-msg", db.name + "-txn"
    elastic = {"url": opensearch.url, "index": db.name + ".{table}",
               "message_index": msg_index,
               "transactions": "index", "transaction_index": txn_index}
    run_config(pgspout, db, tmp_path, db.name, endpos,
               [("file", "file", {"path": out}),
                ("search", sink_name(), elastic)], BOTH)
    events = read_jsonl(out)
    messages = of_ops(events, "message")
    assert contents(messages) == MESSAGE_CONTENTS
    assert [m["transactional"] for m in messages] == [True, False, False]
    transactions = of_ops(events, "begin", "commit")
    assert len(transactions) == 4  # two delivered transactions

    docs = opensearch.documents(msg_index)
    assert sources(docs) == by_position(messages)
    txn_docs = opensearch.documents(txn_index)
    assert sources(txn_docs) == by_position(transactions)
    assert set(sources(opensearch.documents(db.name + ".t"))) == {
        "1", "2", "3"}

    # A replay of the whole stream (a second slot made before the
    # workload, as after a crash that lost the confirmation) overwrites
    # nothing and adds nothing: same ids, same versions.
    run_config(pgspout, db, tmp_path, db.name + "_replay", endpos,
               [("search", sink_name(), elastic)], BOTH)
    assert opensearch.documents(msg_index) == docs
    assert opensearch.documents(txn_index) == txn_docs

    # The stream goes on: one more message of each kind.
    db.psql("begin; insert into t values (4);"
            "select pg_logical_emit_message(true, 'app', 'later'); commit;")
    endpos = wal_end(db)
    run_config(pgspout, db, tmp_path, db.name, endpos,
               [("file", "file", {"path": out}),
                ("search", sink_name(), elastic)], BOTH)
    events = read_jsonl(out)
    assert contents(of_ops(events, "message")) == MESSAGE_CONTENTS + ["later"]
    assert sources(opensearch.documents(msg_index)) == by_position(
        of_ops(events, "message"))
    assert sources(opensearch.documents(txn_index)) == by_position(
        of_ops(events, "begin", "commit"))


def test_skipped_by_option_or_when_off(db, pgspout, opensearch, tmp_path):
    db.psql("create table t (id int primary key);")
    db.create_slot(db.name)
    db.psql("select pg_create_logical_replication_slot('%s_off', "
            "'pgoutput');" % db.name)
    endpos = message_workload(db)
    msg_index, txn_index = db.name + "-msg", db.name + "-txn"
    names = {"message_index": msg_index, "transaction_index": txn_index,
             "index": db.name + ".{table}"}
    # Skipped by option (transactions are skipped by default): neither
    # index appears, and the skipped events do not hold the slot back.
    run_config(pgspout, db, tmp_path, db.name, endpos,
               [("search", sink_name(),
                 dict(names, url=opensearch.url, messages="skip"))], BOTH)
    assert set(sources(opensearch.documents(db.name + ".t"))) == {
        "1", "2", "3"}
    assert not opensearch.index_exists(msg_index)
    assert not opensearch.index_exists(txn_index)
    confirmed = db.scalar("select confirmed_flush_lsn from "
                          "pg_replication_slots where slot_name = '%s'"
                          % db.name)
    assert lsn_to_int(confirmed) >= lsn_to_int(endpos)
    # Indexed by option, but pgspout's messages and transaction_events are
    # off (the default): nothing reaches the sink, no index appears.
    run_config(pgspout, db, tmp_path, db.name + "_off", endpos,
               [("search", sink_name(),
                 dict(names, url=opensearch.url, transactions="index"))], "")
    assert not opensearch.index_exists(msg_index)
    assert not opensearch.index_exists(txn_index)

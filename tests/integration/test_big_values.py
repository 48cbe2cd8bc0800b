"""Huge single values through the file sink: the value read back from the
file equals the source (digests computed by the server and from the decoded
JSON), and pgspout's peak RSS stays within the bound the README documents:
twice the change message's size plus a fixed 64 MiB. libpq holds two copies
of the message (its input buffer and the copy PQgetCopyData returns);
pgspout itself streams the JSON to the file in bounded pieces.

Sizes: 100 MiB values in CI; 500 MiB (the largest bytea PostgreSQL can
send as text is just under 512 MiB) with PGSPOUT_FAULTS_FULL=1.
"""

import hashlib
import json
import os
import re

import pytest

from pgharness import run_measured

pytestmark = [pytest.mark.rss, pytest.mark.slow]

FULL = os.environ.get("PGSPOUT_FAULTS_FULL") == "1"
MIB = 1 << 20
VALUE_MIB = 500 if FULL else 100
FIXED_BOUND = 64 * MIB
CHUNK = MIB

# 256 bytes 00..ff as hex, so the value holds every byte value.
ALL_BYTES_HEX = ("(select string_agg(lpad(to_hex(i), 2, '0'), '') "
                 "from generate_series(0, 255) i)")
# Plain text with, every 1,000 bytes or so, what JSON escapes (quote,
# backslash, newline, tab) and multi-byte UTF-8.
TEXT_PATTERN = ("repeat('The quick brown fox jumps over the lazy dog. ', 22)"
                " || chr(34) || chr(92) || chr(10) || chr(9) || chr(233)"
                " || chr(8364)")


def bytea_of(nbytes):
    assert nbytes % 256 == 0
    return "decode(repeat(%s, %d), 'hex')" % (ALL_BYTES_HEX, nbytes // 256)


def text_of(db, nbytes):
    pattern_bytes = int(db.scalar("select octet_length(%s)" % TEXT_PATTERN))
    return "repeat(%s, %d)" % (TEXT_PATTERN, nbytes // pattern_bytes)


_ESCAPES = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f",
            b"n": b"\n", b"r": b"\r", b"t": b"\t"}
_SPECIAL = re.compile(rb'["\\]')


def decode_json_string(f, pending, feed):
    """Decodes a JSON string whose body starts in `pending` (just after the
    opening quote) and continues in file f, a chunk at a time, handing the
    decoded bytes to feed; returns what follows the closing quote."""
    pos = 0
    while True:
        m = _SPECIAL.search(pending, pos)
        if not m:
            feed(pending[pos:])
            pending, pos = f.read(CHUNK), 0
            assert pending, "unterminated JSON string"
            continue
        i = m.start()
        feed(pending[pos:i])
        if pending[i:i + 1] == b'"':
            return pending[i + 1:]
        if len(pending) - i < 6:  # the escape may be cut in two
            pending, i = pending[i:], 0
            while len(pending) < 6:
                more = f.read(CHUNK)
                if not more:
                    break
                pending += more
        esc = pending[i + 1:i + 2]
        if esc == b"u":
            code = int(pending[i + 2:i + 6], 16)
            assert not 0xD800 <= code <= 0xDFFF, "surrogate escape"
            feed(chr(code).encode("utf-8"))
            pos = i + 6
        else:
            feed(_ESCAPES[esc])
            pos = i + 2


class HexDigest:
    """md5 of the bytes a bytea's hex text form (\\x...) stands for."""

    def __init__(self):
        self.md5 = hashlib.md5()
        self.pending = b""
        self.prefix_seen = False

    def feed(self, data):
        data = self.pending + data
        if not self.prefix_seen:
            if len(data) < 2:
                self.pending = data
                return
            assert data[:2] == b"\\x", data[:10]
            data = data[2:]
            self.prefix_seen = True
        even = len(data) - len(data) % 2
        self.md5.update(bytes.fromhex(data[:even].decode("ascii")))
        self.pending = data[even:]

    def hexdigest(self):
        assert self.prefix_seen and not self.pending
        return self.md5.hexdigest()


class TextDigest:
    def __init__(self):
        self.md5 = hashlib.md5()

    def feed(self, data):
        self.md5.update(data)

    def hexdigest(self):
        return self.md5.hexdigest()


def read_big_line(path, column, digest):
    """Reads the file's events, decoding every value of `column` in a
    streaming way into a fresh `digest()` rather than loading a huge line
    whole; returns (the events, with those values replaced by "", the
    digests in order)."""
    marker = b'"%s":"' % column.encode()
    events, digests = [], []
    line = b""
    with open(path, "rb") as f:
        pending = b""
        while True:
            if not pending:
                pending = f.read(CHUNK)
                if not pending:
                    break
            nl = pending.find(b"\n")
            at = pending.find(marker)
            if at >= 0 and (nl < 0 or at < nl):
                line += pending[:at + len(marker)] + b'"'
                d = digest()
                pending = decode_json_string(f, pending[at + len(marker):],
                                             d.feed)
                digests.append(d.hexdigest())
            elif nl >= 0:
                events.append(json.loads(line + pending[:nl]))
                line, pending = b"", pending[nl + 1:]
            else:
                # Keep a tail that may be the start of a marker cut in two.
                cut = max(0, len(pending) - (len(marker) - 1))
                line += pending[:cut]
                more = f.read(CHUNK)
                if not more:
                    line += pending[cut:]
                    break
                pending = pending[cut:] + more
    assert line == b"", "the last line is torn"
    return events, digests


def assert_within_bound(peak, message_bytes):
    bound = 2 * message_bytes + FIXED_BOUND
    print("peak RSS %.1f MiB for a %.1f MiB message (%.2fx; bound %.1f MiB)"
          % (peak / MIB, message_bytes / MIB, peak / message_bytes,
             bound / MIB))
    assert peak <= bound, "peak RSS %.1f MiB over the bound %.1f MiB" % (
        peak / MIB, bound / MIB)


def check_single_value(db, pgspout_bin, tmp_path, sql_type, expr, digest):
    db.psql("create table big (id int primary key, v %s);" % sql_type)
    db.create_slot(db.name)
    db.psql("insert into big values (1, %s);" % expr)
    source_md5 = db.scalar("select md5(v) from big")
    text_bytes = int(db.scalar("select octet_length(v::text) from big"))
    out, peak = run_measured(pgspout_bin, db, tmp_path)
    events, digests = read_big_line(out, "v", digest)
    os.unlink(out)
    assert [e["op"] for e in events] == ["schema", "insert"], events
    assert events[1]["after"] == {"id": 1, "v": ""}
    assert events[1]["key"] == {"id": 1}
    assert digests == [source_md5]
    # The message carries the value's text form and a few bytes more.
    assert_within_bound(peak, text_bytes)


def test_huge_bytea_streams_within_bound(db, pgspout_bin, tmp_path):
    check_single_value(db, pgspout_bin, tmp_path, "bytea",
                       bytea_of(VALUE_MIB * MIB), HexDigest)


def test_huge_text_streams_within_bound(db, pgspout_bin, tmp_path):
    check_single_value(db, pgspout_bin, tmp_path, "text",
                       text_of(db, VALUE_MIB * MIB), TextDigest)


def test_huge_values_in_one_transaction(db, pgspout_bin, tmp_path):
    """Several huge rows in a row: each is written out before the next one
    is read, so the bound is that of the largest message, not their sum."""
    rows = 3
    each = VALUE_MIB * MIB // 2
    db.psql("create table big (id int primary key, v bytea);")
    db.create_slot(db.name)
    db.psql("begin;" + "".join(
        "insert into big values (%d, %s);" % (i, bytea_of(each))
        for i in range(1, rows + 1)) + "commit;")
    source = [r[0] for r in db.query("select md5(v) from big order by id")]
    text_bytes = int(db.scalar("select max(octet_length(v::text)) from big"))
    out, peak = run_measured(pgspout_bin, db, tmp_path)
    events, digests = read_big_line(out, "v", HexDigest)
    os.unlink(out)
    assert [e["op"] for e in events] == ["schema"] + ["insert"] * rows
    assert [e["after"]["id"] for e in events[1:]] == list(range(1, rows + 1))
    assert digests == source
    assert_within_bound(peak, text_bytes)

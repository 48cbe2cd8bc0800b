"""Every value kind becomes the JSON the spec asks for, checked against the
server's own text output of the same values."""

import decimal
import json

import pytest

from pgharness import data_events

# column name -> (SQL type, how its value is encoded)
COLUMNS = [
    ("c_int2", "int2", "int"),
    ("c_int4", "int4", "int"),
    ("c_int8", "int8", "int"),
    ("c_oid", "oid", "int"),
    ("c_f4", "float4", "float"),
    ("c_f8", "float8", "float"),
    ("c_num", "numeric", "numeric"),
    ("c_num_typmod", "numeric(12,4)", "numeric"),
    ("c_bool", "bool", "bool"),
    ("c_json", "json", "json"),
    ("c_jsonb", "jsonb", "json"),
    ("c_int_arr", "int4[]", "array"),
    ("c_int8_arr", "int8[]", "array"),
    ("c_f8_arr", "float8[]", "array"),
    ("c_num_arr", "numeric[]", "numeric_array"),
    ("c_bool_arr", "bool[]", "array"),
    ("c_jsonb_arr", "jsonb[]", "array"),
    ("c_text", "text", "text"),
    ("c_varchar", "varchar(20)", "text"),
    ("c_char", "char(3)", "text"),
    ("c_ts", "timestamp", "text"),
    ("c_tstz", "timestamptz", "text"),
    ("c_date", "date", "text"),
    ("c_time", "time", "text"),
    ("c_interval", "interval", "text"),
    ("c_uuid", "uuid", "text"),
    ("c_bytea", "bytea", "text"),
    ("c_inet", "inet", "text"),
    ("c_point", "point", "text"),
    ("c_mood", "mood", "text"),
    # Arrays of every element type are JSON arrays (elements as their
    # type's JSON, text as strings), not only arrays of the types above.
    ("c_text_arr", "text[]", "array"),
]

ROWS = [
    # extremes, specials and awkward text
    """(1, -32768, 2147483647, 9223372036854775807, 4294967295,
      3.14159, 'NaN',
      '123456789012345678901234567890.123456789012345678901234567890',
      '-0.0001', true,
      '{"a" : [1, 2, {"b": null}],   "c": "x  y", "n": 1.50}',
      '{"z": {"y": [1, "two", 3.5e2]}, "a": true, "q": "say \\"hi\\""}',
      '{{1,2},{NULL,4}}', '{9223372036854775807,-9223372036854775808}',
      '{1.5,NaN,-Infinity,1e300}', '{1.10,NULL,-3,99999999999999999999.9}',
      '{t,f,NULL}', ARRAY['{"a": 1}'::jsonb, '[1, [2]]', 'null', '"s"'],
      E'He said "hi"\\n\\ttab \\\\ back \\u00fcn\\u00ef \\U0001F600 \\'q\\'',
      'abc', 'ab', '2024-02-29 23:59:59.123456',
      '2024-01-01 12:00:00.5+05:30', '2024-12-31', '13:14:15.000001',
      '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      '\\xdeadbeef00', '192.168.0.1/24', '(1.5,-2)', 'happy',
      '{a,"b c",NULL,"d\\"e",""}')""",
    # the other ends
    """(2, 32767, -2147483648, -9223372036854775808, 0,
      '-Infinity', 'Infinity', 'NaN', 'NaN', false, '[]', 'null',
      '{{{1}},{{2}}}', '{}', '{0.1,-0,1.7976931348623157e308}', '{}',
      '{}', '{}', '', '', '', '0001-01-01 00:00:00', 'infinity',
      '-infinity', '24:00:00', '-00:00:00.000001', '00000000-0000-0000-0000-000000000000',
      '\\x', '::1', '(0,0)', 'sad', '{}')""",
    # SQL NULL everywhere
    "(3" + ", NULL" * len(COLUMNS) + ")",
]


def exact(text):
    return json.loads(text, parse_float=decimal.Decimal)


def to_strings(value):
    if isinstance(value, list):
        return [to_strings(v) for v in value]
    return value


def check_value(kind, got, text, as_json):
    if text is None:
        assert got is None
        return
    if kind == "int":
        assert isinstance(got, int) and not isinstance(got, bool)
        assert got == int(text)
    elif kind == "float":
        if text in ("NaN", "Infinity", "-Infinity"):
            assert got == text
        else:
            assert isinstance(got, (int, decimal.Decimal)), got
            assert not isinstance(got, bool)
            assert decimal.Decimal(got) == decimal.Decimal(text)
    elif kind == "numeric":
        assert got == text
    elif kind == "bool":
        assert got is (text == "t")
    elif kind == "json":
        assert got == exact(text)
    elif kind == "array":
        assert got == exact(as_json)
    elif kind == "numeric_array":
        # numeric elements are exact strings, as a numeric value is
        assert got == json.loads(as_json, parse_float=str, parse_int=str)
    else:
        assert got == text


@pytest.mark.all_versions
def test_value_types(db, stream):
    db.psql("create type mood as enum ('sad', 'happy');"
            "create table vals (id int primary key, %s);"
            % ", ".join("%s %s" % (n, t) for n, t, _ in COLUMNS))
    db.create_slot(db.name)
    db.psql("insert into vals values %s;" % ",".join(ROWS))

    events = stream()
    schema = [e for e in events if e["op"] == "schema"]
    assert len(schema) == 1
    expected_types = db.query(
        "select attname, format_type(atttypid, atttypmod), atttypid::int "
        "from pg_attribute where attrelid = 'vals'::regclass and attnum > 0 "
        "and not attisdropped order by attnum")
    assert [(c["name"], c["type"], c["type_oid"])
            for c in schema[0]["columns"]] == \
        [(n, t, int(o)) for n, t, o in expected_types]
    assert any(c["type"] == "mood" for c in schema[0]["columns"])

    inserts = {e["after"]["id"]: e["after"] for e in data_events(events)}
    assert sorted(inserts) == [1, 2, 3]
    names = [n for n, _, _ in COLUMNS]
    texts = db.query("select id, %s from vals order by id" % ", ".join(names))
    as_json = db.query("select id, %s from vals order by id" % ", ".join(
        "case when %s is null then null else to_json(%s)::text end" % (n, n)
        for n in names))
    failures = []
    for text_row, json_row in zip(texts, as_json):
        after = inserts[int(text_row[0])]
        assert set(after) == {"id"} | set(names)
        for (name, _, kind), text, js in zip(COLUMNS, text_row[1:],
                                              json_row[1:]):
            try:
                check_value(kind, after[name], text, js)
            except AssertionError:
                failures.append("row %s %s: got %r, server text %r" % (
                    text_row[0], name, after[name], text))
    assert not failures, "\n".join(failures)


def test_domain_and_schema_qualified_types(db, stream):
    db.psql("create schema app; create type app.color as enum ('red');"
            "create domain posint as int check (value > 0);"
            "create table t (id posint primary key, c app.color,"
            " v varchar(7)[], n numeric(5,1));")
    db.create_slot(db.name)
    db.psql("insert into t values (5, 'red', '{x}', 1.5);")
    events = stream()
    cols = [e for e in events if e["op"] == "schema"][0]["columns"]
    expected = db.query(
        "select format_type(atttypid, atttypmod) from pg_attribute where "
        "attrelid = 't'::regclass and attnum > 0 order by attnum")
    assert [c["type"] for c in cols] == [r[0] for r in expected]
    after = data_events(events)[0]["after"]
    # a domain over int4 is still an integer
    assert after["id"] == 5 and after["c"] == "red" and after["n"] == "1.5"


# Arrays whose elements are arrays themselves, through domains over array
# types, and the other arrays of user types: (column, SQL type, the server's
# own JSON of the same value, which pgspout's must equal).
NESTED_DOMAINS = """
create domain intlist as int4[];
create domain textlist as text[];
create domain boxlist as box[];
create domain numlist as numeric[];
create domain jsonblist as jsonb[];
create domain posint as int4 check (value > 0);
create domain posintlist as posint[];
create domain intlistlist as intlist[];
create type pair as (a int4, b text);
"""
TO_JSON = "to_json({0})"
NESTED_COLUMNS = [
    # a domain over an array, and an array of a domain over a scalar
    ("c_list", "intlist", TO_JSON),
    ("c_posints", "posint[]", TO_JSON),
    # arrays of a domain over an array, printed {"{1,2}","{}",NULL}
    ("c_lists", "intlist[]", TO_JSON),
    ("c_lists_2d", "intlist[][]", TO_JSON),
    ("c_texts", "textlist[]", TO_JSON),
    ("c_boxes", "boxlist[]", TO_JSON),
    ("c_nums", "numlist[]", TO_JSON),
    ("c_jsonbs", "jsonblist[]", TO_JSON),
    ("c_posint_lists", "posintlist[]", TO_JSON),
    # a domain over an array of a domain over an array, and arrays of it
    ("c_listlist", "intlistlist", TO_JSON),
    ("c_listlists", "intlistlist[]", TO_JSON),
    # composite and range elements stay strings of their text output (to_json
    # would make objects of composites)
    ("c_pairs", "pair[]",
     "case when {0} is null then null else coalesce((select json_agg("
     "{0}[i]::text order by i) from generate_subscripts({0}, 1) i), '[]') "
     "end"),
    ("c_ranges", "int4range[]", TO_JSON),
]
NESTED_ROWS = [
    """(1, '{1,2}', '{1,NULL,3}', '{"{1,2}","{}",NULL}',
      '{{"{1}","{{2,3},{4,5}}"},{NULL,"[0:1]={6,7}"}}',
      ARRAY[ARRAY['a b', E'q"uo\\te', NULL, 'NULL', '', '{x}']::textlist,
            '{}'::textlist],
      ARRAY['{(1,1),(0,0);(3,3),(2,2)}'::boxlist],
      ARRAY['{1.10,NaN}'::numlist, NULL::numlist],
      ARRAY[ARRAY['{"a": [1, "x,y"]}', 'null', NULL]::jsonblist],
      ARRAY['{1,2}'::posintlist, '{3}'::posintlist],
      '{"{1,2}","{}",NULL}',
      ARRAY[ARRAY['{"{1,2}",NULL}'::intlistlist, '{}'::intlistlist],
            ARRAY['{}'::intlistlist, '{"{{3}}"}'::intlistlist]],
      ARRAY[ROW(1, 'x, "y"')::pair, NULL, ROW(NULL, NULL)::pair],
      ARRAY['[1,3)'::int4range, 'empty'::int4range])""",
    "(2" + ", '{}'" * len(NESTED_COLUMNS) + ")",
    "(3" + ", NULL" * len(NESTED_COLUMNS) + ")",
]


@pytest.mark.all_versions
def test_arrays_of_domains_over_arrays(db, stream):
    db.psql(NESTED_DOMAINS + "create table nested (id int primary key, %s);"
            % ", ".join("%s %s" % (n, t) for n, t, _ in NESTED_COLUMNS))
    db.create_slot(db.name)
    db.psql("insert into nested values %s;" % ",".join(NESTED_ROWS))

    inserts = {e["after"]["id"]: e["after"]
               for e in data_events(stream(), "nested")}
    assert sorted(inserts) == [1, 2, 3]
    expected = db.query("select id, %s from nested order by id" % ", ".join(
        "(%s)::text" % js.format(n) for n, _, js in NESTED_COLUMNS))
    failures = []
    for row in expected:
        after = inserts[int(row[0])]
        for (name, sql_type, _), js in zip(NESTED_COLUMNS, row[1:]):
            if js is None:
                want = None
            elif "num" in sql_type:
                # numeric elements are exact strings, as a numeric value is
                want = json.loads(js, parse_float=str, parse_int=str)
            else:
                want = exact(js)
            if after[name] != want:
                failures.append("row %s %s (%s): got %s, server's JSON %s" % (
                    row[0], name, sql_type, json.dumps(after[name]), js))
    assert not failures, "\n".join(failures)
    # the values really nest, so the comparison above compares nested arrays
    assert inserts[1]["c_lists"] == [[1, 2], [], None]
    assert inserts[1]["c_listlists"][1][1] == [[[3]]]


# json/jsonb JSON null and SQL NULL both encode as null; json_null names the
# columns of each image holding JSON null, as the server itself tells them
# apart (json_typeof).
JSON_NULL_COLUMNS = [("j", "json"), ("b", "jsonb"), ("d", "jdoc")]


def server_json_nulls(db, table):
    """{id: [columns holding JSON null]}, in column order."""
    rows = db.query("select id, %s from %s order by id" % (", ".join(
        "%s is not null and %s_typeof(%s::%s) = 'null'"
        % (c, "jsonb" if t != "json" else "json", c,
           "jsonb" if t != "json" else "json")
        for c, t in JSON_NULL_COLUMNS), table))
    return {int(r[0]): [c for (c, _), v in zip(JSON_NULL_COLUMNS, r[1:])
                        if v == "t"] for r in rows}


@pytest.mark.all_versions
def test_json_null_and_sql_null_told_apart(db, stream):
    db.psql("create domain jdoc as jsonb;"
            "create table docs (id int primary key, j json, b jsonb, d jdoc,"
            " t text);"
            "alter table docs replica identity full;")
    db.create_slot(db.name)
    db.psql("insert into docs values (1, 'null', 'null', 'null', 'null'),"
            " (2, NULL, NULL, NULL, NULL),"
            " (3, ' null ', '{\"a\": null}', NULL, NULL),"
            " (4, '[null]', NULL, 'null', 'x');")
    inserted = server_json_nulls(db, "docs")
    db.psql("update docs set j = NULL, b = 'null' where id = 1;"
            "update docs set d = '{}' where id = 4;")
    updated = server_json_nulls(db, "docs")
    db.psql("delete from docs where id in (1, 3);")

    events = data_events(stream(), "docs")
    assert [(e["op"], e["key"]["id"]) for e in events] == [
        ("insert", 1), ("insert", 2), ("insert", 3), ("insert", 4),
        ("update", 1), ("update", 4), ("delete", 1), ("delete", 3)]
    # every null of these columns is SQL NULL unless json_null names it
    for e in events:
        for image in ("before", "after"):
            listed = e.get("json_null", {}).get(image, [])
            row = e[image] or {}
            for c, _ in JSON_NULL_COLUMNS:
                if c in listed:
                    assert c in row and row[c] is None, e
    # and it names exactly the ones the server says hold JSON null
    def listed(e, image):
        return e.get("json_null", {}).get(image, [])
    for e in events[:4]:
        assert listed(e, "after") == inserted[e["key"]["id"]], e
        assert listed(e, "before") == []
    assert listed(events[4], "before") == inserted[1] == ["j", "b", "d"]
    assert listed(events[4], "after") == updated[1] == ["b", "d"]
    assert listed(events[5], "before") == inserted[4] == ["d"]
    assert listed(events[5], "after") == updated[4] == []
    assert listed(events[6], "before") == updated[1]
    assert listed(events[7], "before") == inserted[3] == ["j"]
    # an event without JSON null carries no json_null at all
    assert "json_null" not in events[1]
    assert events[1]["after"] == {"id": 2, "j": None, "b": None, "d": None,
                                  "t": None}
    assert events[0]["after"]["t"] == "null"

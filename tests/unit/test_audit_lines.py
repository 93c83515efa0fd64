"""Audit line parsing: real lines captured from MariaDB's server_audit plugin
(tests/unit/data/server_audit_mariadb.log, see capture_server_audit.py) and Aurora-format lines."""
import os

import pytest
from hypothesis import given, strategies as hs

from connectors.formats.audit_lines import (AURORA, MARIADB, BadAuditLine, aurora_line, escape_object, parse_audit_line,
                                    split_host_port, split_records)

DATA = os.path.join(os.path.dirname(__file__), "data")


def _records(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as handle:
        records, rest = split_records(handle.read())
    assert rest == ""
    return records


def _queries(name):
    return {(e.connection_id, e.query_id): e for e in map(parse_audit_line, _records(name)) if e.operation == "QUERY"}


def test_every_captured_mariadb_line_parses():
    events = [parse_audit_line(r) for r in _records("server_audit_mariadb.log")]
    assert len(events) == 81
    assert {e.dialect for e in events} == {MARIADB}
    assert {e.operation for e in events} >= {"CONNECT", "DISCONNECT", "FAILED_CONNECT", "QUERY", "READ", "WRITE",
                                             "CREATE", "ALTER", "DROP", "RENAME"}
    assert all(e.server == "vm" and e.host == "127.0.0.1" and e.port is None for e in events)


def test_captured_query_text_comes_back_exactly_as_sent():
    # The statements capture_server_audit.py sent, byte for byte, after unescaping.
    from tests.unit.data.capture_server_audit import STATEMENTS

    logged = [e.object for e in _queries("server_audit_mariadb.log").values()]
    for statement in STATEMENTS:
        if "IDENTIFIED BY" in statement:
            continue  # the plugin masks passwords
        assert statement in logged, statement


def test_captured_nasty_cases():
    q = _queries("server_audit_mariadb.log")
    by_text = {e.object: e for e in q.values()}
    raw_newline = "INSERT INTO t\n  (id, note)\nVALUES\n\t(7, 'raw\nnewline in literal')"
    assert by_text[raw_newline].database == "capture_db"
    fake = "INSERT INTO t (id, note) VALUES (9, ''',0\n20260101 00:00:00,fake,line')"
    assert by_text[fake].retcode == 0
    assert by_text["INSERT INTO t (id, note) VALUES (8, 'Zürich – São Paulo – 東京 🦆')"].query_id == 28
    assert by_text["INSERT INTO t (id, note) VALUES (1, 'duplicate key fails')"].retcode == 1062
    assert by_text["SELECT 1 FROM no_such_table"].retcode == 1146
    masked = [t for t in by_text if "IDENTIFIED BY *****" in t]
    assert masked


def test_captured_time_and_table_events():
    events = [parse_audit_line(r) for r in _records("server_audit_mariadb.log")]
    first = events[0]
    assert first.line.startswith("20261122 13:57:55,")
    assert first.event_time_us == 1795355875 * 1_000_000  # 2026-11-22 13:57:55 read as UTC
    writes = [e for e in events if e.operation == "WRITE"]
    assert writes and all(e.retcode is None and e.object for e in writes)  # table events leave retcode empty
    rename = next(e for e in events if e.operation == "RENAME")
    assert rename.object == "t|capture_db.t2"


def test_aurora_lines():
    events = [parse_audit_line(r) for r in _records("aurora_audit.log")]
    assert len(events) == 11
    assert {e.dialect for e in events} == {AURORA}
    assert events[0].event_time_us == 1700000000123456
    assert events[1].object == "INSERT INTO orders (id, note) VALUES (1, 'a, b, c')"
    assert events[2].operation == "WRITE" and events[2].object == "orders" and events[2].retcode == 0
    assert events[3].object == "UPDATE orders SET note = 'it\\'s \"quoted\", with \\\\ backslash' WHERE id = 1"
    assert events[5].retcode == 1062
    assert events[7].object == "INSERT INTO orders (id, note) VALUES (3, 'Zürich – 東京 🦆')"
    assert events[8].extra == ("SOCKET",)  # Aurora MySQL 3 appends the connection type
    assert events[9].object == "INSERT INTO orders (id, note)\nVALUES (4, 'two\nlines')"  # raw newlines
    assert events[10].operation == "DISCONNECT" and events[10].database == "shop"


def test_host_and_port():
    assert split_host_port("10.0.0.1:3306") == ("10.0.0.1", 3306)
    assert split_host_port("[::1]:54321") == ("::1", 54321)
    assert split_host_port("::1") == ("::1", None)
    assert split_host_port("localhost") == ("localhost", None)
    event = parse_audit_line("20260101 10:00:00,db1,app,192.168.1.7:50123,5,9,QUERY,shop,'SELECT 1',0")
    assert (event.host, event.port) == ("192.168.1.7", 50123)


@pytest.mark.parametrize("line, reason", [
    ("", "empty"),
    ("hello world", "fields"),
    ("2026-01-01 10:00:00,h,u,x,1,2,QUERY,db,'x',0", "timestamp"),
    ("20260101 10:00:00,h,u,x,one,2,QUERY,db,'x',0", "connection id"),
    ("20260101 10:00:00,h,u,x,1,2,QUERY,db,'not closed,0", "not closed"),
    ("20260101 10:00:00,h,u,x,1,2,QUERY,db,'x'junk,0", "followed by"),
    ("20261340 10:00:00,h,u,x,1,2,QUERY,db,'x',0", "bad timestamp"),
    ("20260101 10:00:00,h,u,x,1,2,query,db,'x',0", "operation"),
    ("20260101 10:00:00,h,u,x,1,2,QUERY,db,'x',zero", "retcode"),
])
def test_bad_lines_say_why(line, reason):
    with pytest.raises(BadAuditLine, match=reason):
        parse_audit_line(line)


def test_split_records_keeps_unfinished_rest():
    text = "1,h,u,x,1,2,QUERY,db,'a\nb',0\n1,h,u,x,1,3,QUERY,db,'c"
    records, rest = split_records(text)
    assert records == ["1,h,u,x,1,2,QUERY,db,'a\nb',0"]
    assert rest == "1,h,u,x,1,3,QUERY,db,'c"
    assert split_records(rest + "',0\n") == (["1,h,u,x,1,3,QUERY,db,'c',0"], "")


_text = hs.text(hs.characters(blacklist_categories=("Cs",)), max_size=60)


@given(query=_text, db=hs.from_regex(r"[a-z_]{0,10}", fullmatch=True))
def test_any_query_text_round_trips(query, db):
    line = aurora_line(time_us=1700000000000001, server="s1", user="u", host="10.0.0.1", connection_id=7,
                       query_id=8, operation="QUERY", database=db, query=query)
    records, rest = split_records(line + "\n")
    assert records == [line] and rest == ""
    event = parse_audit_line(line)
    assert event.object == query and event.database == db and event.retcode == 0


def test_escape_object_matches_the_plugin():
    assert escape_object("it's \\ a\nb\tc") == "'it\\'s \\\\ a\\nb\\tc'"

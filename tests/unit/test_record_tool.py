import base64
import datetime as dt
import gzip
import io
import json

import pytest
from amazon.ion import simpleion

from connectors.formats import kpl
from connectors.formats.qldb import decode_kinesis_record
from connectors.formats.qldb_encode import encode_control, encode_revision
from job.cli.main import build_parser, main as cli_main
from job.cli.tools.record import RecordToolError, decode_text, encode_records, read_input_records, run_record

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def revision(n: int, data=None) -> bytes:
    return encode_revision(table="Person", document_id=f"DOC{n}", version=n, data=data or {"n": n},
                           tx_id=f"tx{n}", tx_time=T0)


def values_of(kinesis_data: bytes) -> list:
    """Each user record's value as canonical Ion text (Ion nulls do not compare equal as objects)."""
    return [simpleion.dumps(simpleion.loads(u.data, single_value=True), binary=False)
            for u in kpl.deaggregate(kinesis_data)]


def run(argv, stdin: bytes = b""):
    """`ledgersync ARGV` with the given standard input; (exit code, standard output)."""
    out = io.StringIO()
    code = run_record(build_parser().parse_args(argv), stdin=io.BytesIO(stdin), stdout=out)
    return code, out.getvalue()


def test_decode_then_encode_gives_back_the_same_records():
    users = [("DOC1", encode_control("CREATED")), ("DOC1", revision(1)), ("DOC2", revision(2, {"d": None}))]
    (_key, original), = kpl.aggregate(users)
    code, text = run(["record", "decode"], original)
    assert code == 0
    again, = encode_records(text.encode(), aggregate=True)
    assert values_of(again[1]) == values_of(original)
    assert [type(x).__name__ for x in decode_kinesis_record("s", "h", "1", again[1])] == ["Decoded"] * 3


def test_decode_shows_layers_user_records_and_what_the_job_does():
    (_key, data), = kpl.aggregate([("a", revision(1)), ("b", b"not ion"), ("c", encode_control("CREATED"))])
    _code, text = run(["record", "decode"], base64.b64encode(data) + b"\n")
    assert "KPL aggregated record, 3 user records" in text
    assert "ledgersync (format qldb): 1 revision, 1 dead letter, 1 CONTROL record" in text
    assert "dead letter: user record 1: cannot parse Ion" in text
    assert "// user record 0, partition key 'a': " in text and "REVISION_DETAILS Person DOC1 version 1" in text
    assert 'metadata: {' in text and 'id: "DOC1"' in text


def test_encode_raw_gzip_base64_and_decode_it_back():
    document = b'{"messageType": "DATA_MESSAGE", "logEvents": []}'
    code, text = run(["record", "encode", "--raw", "--gzip", "--base64"], document)
    assert code == 0
    assert gzip.decompress(base64.b64decode(text.strip())) == document
    _code, shown = run(["record", "decode"], text.encode())
    assert "//   gzip" in shown and 'messageType: "DATA_MESSAGE"' in shown


def test_several_values_become_several_base64_records():
    source = b'{recordType: "CONTROL", payload: {controlRecordType: "CREATED"}} {a: 1}'
    code, text = run(["record", "encode", "--base64"], source)
    lines = text.split()
    assert code == 0 and len(lines) == 2
    records = read_input_records(text.encode())
    assert [simpleion.loads(r.data, single_value=True)["payload"]["controlRecordType"] for r in records[:1]] == \
        ["CREATED"]


def test_binary_output_to_a_file(tmp_path):
    target = tmp_path / "record.bin"
    code, _ = run(["record", "encode", "--aggregate", "-o", str(target)], b"{a: 1} {b: 2}")
    assert code == 0 and values_of(target.read_bytes()) == values_of(kpl.aggregate(
        [("k", simpleion.dumps({"a": 1}, binary=True)), ("k", simpleion.dumps({"b": 2}, binary=True))])[0][1])
    code, text = run(["record", "decode", str(target)])
    assert code == 1 and "2 user records" in text  # {a: 1} is no QLDB record: dead letters, exit 1


def test_several_records_without_aggregate_or_base64_is_refused(capsys):
    code, _ = run(["record", "encode", "-o", "/dev/null"], b"{a: 1} {b: 2}")
    assert code == 2 and "use --aggregate" in capsys.readouterr().err


def test_input_that_is_not_ion_is_refused_with_the_reason(capsys):
    code, _ = run(["record", "encode", "--base64"], b"{a: ")
    assert code == 2 and "stdin: not Ion text" in capsys.readouterr().err


def test_get_records_json_and_lambda_events_are_read():
    data = revision(3)
    cli = {"Records": [{"SequenceNumber": "495", "PartitionKey": "pk", "Data": base64.b64encode(data).decode()}]}
    event = {"Records": [{"kinesis": {"sequenceNumber": "7", "partitionKey": "k",
                                      "data": base64.b64encode(data).decode()}}]}
    for document, sequence in ((cli, "495"), (event, "7")):
        (record,) = read_input_records(json.dumps(document).encode())
        assert record.data == data and record.meta["sequence"] == sequence


def test_base64_is_only_guessed_when_it_decodes_to_a_known_format():
    assert read_input_records(b"abcd")[0].data == b"abcd"  # Ion text that looks like base64
    assert read_input_records(base64.b64encode(revision(1)))[0].data == revision(1)
    with pytest.raises(RecordToolError, match="line 1: not base64"):
        read_input_records(b"%%%", force_base64=True)


def test_json_output_maps_values_as_they_land_in_mysql():
    text = decode_text(read_input_records(revision(1, {"amount": 1.10, "big": 2 ** 70})), as_json=True)
    (line,) = text.splitlines()
    value = json.loads(line)["value"]
    assert value["payload"]["revision"]["data"] == {"amount": 1.1, "big": str(2 ** 70)}


def test_broken_aggregate_is_shown_with_its_reason():
    (_key, data), = kpl.aggregate([("a", revision(1))])
    text = decode_text(read_input_records(data[:-1] + b"\x00"))
    assert "broken: KPL aggregated record MD5 mismatch" in text and "1 dead letter" in text


def test_cli_dispatches_record_without_properties(tmp_path, capsys):
    path = tmp_path / "r.bin"
    path.write_bytes(revision(5))
    assert cli_main(["record", "decode", str(path)]) == 0
    assert "REVISION_DETAILS Person DOC5 version 5" in capsys.readouterr().out


# --- the verdict first, dead letters, exit codes and the --format hint --------------------

DYNAMODB_RECORD = json.dumps({
    "awsRegion": "us-east-1", "eventID": "e1", "eventName": "INSERT", "userIdentity": None,
    "recordFormat": "application/json", "tableName": "Orders", "eventSource": "aws:dynamodb",
    "dynamodb": {"ApproximateCreationDateTime": 1780000000123, "Keys": {"id": {"S": "a"}},
                 "NewImage": {"id": {"S": "a"}, "x": {"N": "1"}}, "SizeBytes": 10}}).encode()


def test_the_verdict_is_the_first_line_and_exit_0_without_dead_letters():
    code, text = run(["record", "decode"], revision(7))
    first = text.splitlines()[0]
    assert code == 0
    assert first.startswith("// record 1 (stdin): ledgersync (format qldb): 1 revision")


def test_a_dead_letter_shows_its_reason_no_revision_and_exits_1():
    bad_version = simpleion.loads(simpleion.dumps(simpleion.loads(revision(1), single_value=True)),
                                  single_value=True)
    bad_version["payload"]["revision"]["metadata"]["version"] = "one"
    code, text = run(["record", "decode"], simpleion.dumps(bad_version, binary=True))
    lines = text.splitlines()
    assert code == 1
    assert lines[0] == "// record 1 (stdin): ledgersync (format qldb): 1 dead letter"
    assert lines[1].startswith("//   dead letter: ") and "version" in lines[1]
    assert "REVISION_DETAILS" not in "\n".join(line for line in lines if line.startswith("//"))


def test_a_record_of_another_format_gets_a_hint_naming_it():
    code, text = run(["record", "decode"], DYNAMODB_RECORD)
    lines = text.splitlines()
    assert code == 1 and "recordType must be a string or symbol" in lines[1]
    assert lines[2] == "//   hint: the record decodes as format dynamodb: try --format dynamodb"
    code, text = run(["record", "decode", "--format", "dynamodb"], DYNAMODB_RECORD)
    assert code == 0 and "hint" not in text
    assert text.splitlines()[0].endswith('ledgersync (format dynamodb): change Orders ["a"] version '
                                         '1780000000123000 tie e1')


def test_the_hint_names_a_setting_the_other_format_needs_and_finds_audit_records():
    from tests.unit.test_dsql_cdc import DOC_EXAMPLE
    from connectors.formats.audit_lines import aurora_line
    from connectors.formats.cloudwatch_logs import LogEvent, encode_subscription_record

    _code, text = run(["record", "decode"], DOC_EXAMPLE)
    assert "hint: the record decodes as format dsql-cdc: try --format dsql-cdc, with source.dsql.keys set " \
           "in --properties FILE" in text
    line = aurora_line(time_us=1780000000000000, server="db1", user="app", host="10.0.0.1", connection_id=3,
                       query_id=9, operation="QUERY", database="shop", query="DELETE FROM t WHERE id = 1")
    audit = encode_subscription_record(log_group="g", log_stream="s", events=[LogEvent("1", 1780000000000, line)])
    code, text = run(["record", "decode", "--base64"], base64.b64encode(audit))
    assert code == 1 and "try --format cloudwatch-audit" in text
    code, text = run(["record", "decode", "--base64", "--format", "cloudwatch-audit"], base64.b64encode(audit))
    assert code == 0 and "ledgersync (format cloudwatch-audit): 1 audit event" in text.splitlines()[0]


def test_json_lines_carry_the_verdict_the_reason_and_the_hint():
    code, text = run(["record", "decode", "--json"], DYNAMODB_RECORD)
    (entry,) = [json.loads(line) for line in text.splitlines()]
    assert code == 1 and entry["verdict"] == "dead-letter" and "recordType" in entry["reason"]
    assert entry["hint"] == {"format": "dynamodb"} and "revision" not in entry
    _code, text = run(["record", "decode", "--json"], revision(4))
    (entry,) = [json.loads(line) for line in text.splitlines()]
    assert entry["verdict"] == "revision" and entry["revision"]["version"] == 4 and "reason" not in entry
    seconds = DYNAMODB_RECORD.replace(b"1780000000123", b"1646316592.0")
    code, text = run(["record", "decode", "--json", "--format", "dynamodb"], seconds)
    (entry,) = [json.loads(line) for line in text.splitlines()]
    assert code == 1 and entry["verdict"] == "dead-letter" and "change" not in entry
    assert "ApproximateCreationDateTime" in entry["reason"] and "seconds" in entry["reason"]
    _code, text = run(["record", "decode", "--json", "--format", "dynamodb"], DYNAMODB_RECORD)
    assert json.loads(text)["verdict"] == "change" and json.loads(text)["change"]["version"] == 1780000000123000

"""Every input `make fuzz` found that broke a decoder's contract (decode, or raise the
decoder's own error), kept as a test. Hangs run in a child process with a time limit,
so a regression fails here instead of hanging the suite."""
from __future__ import annotations

import subprocess
import sys

import pytest

from connectors.formats import ion_framing
from connectors.formats.audit_lines import BadAuditLine, parse_audit_line
from connectors.formats.qldb import BadRecord, decode_kinesis_record, decode_record
from tests.conftest import ROOT

# amazon-ion 0.15.0's C extension never returned on these (found by the qldb,
# kinesis-record and ion-json targets).
HANGS = {
    # A mutated QLDB record: a symbol's VarUInt length runs on into the next bytes and overflows.
    "binary length overflow": b"\xe0\x01\x00\xea\xee\x01\xc3\x81\x83\xde\x01\xbe\x87\xbe\x01\xba\x8dqldbStreamArn"
                              b"\x8arecordType\x87payload\x89tableInfo\x89tabDeNnceNo\x84hash~metadat\xee\x01\x92"
                              b"\x81\x83\xde\x01\x8d\x87\xbe\x01\x89a\x8dqldbStr\x82id",
    # Ion text in a binary record's symbol table: lengths past the end of their container.
    "binary length past its container": b"\xe0\x01\x00\xea\xee\x01\xc3\x81\x83\xde\x01\xbe\x87\xbe\x01\xba\x8d"
                                        b"qldbStreamAr[1, a, 1.10, -0., 1.2d5, 1d300]tableName\x87tableId",
    "text not UTF-8": b"'\xff'\xff\xff",
    "text symbol id of 23 digits": b"$33333333333333333333333'330",
}


@pytest.mark.parametrize("name", HANGS)
def test_inputs_that_hung_the_ion_c_extension_are_dead_letters_within_seconds(name):
    code = ("import sys; from connectors.formats.qldb import decode_kinesis_record; "
            "out = list(decode_kinesis_record('s', 'shard', '1', sys.stdin.buffer.read())); "
            "print(out[0].reason)")
    result = subprocess.run([sys.executable, "-c", code], input=HANGS[name], cwd=ROOT, capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    reason = result.stdout.decode()
    assert reason.startswith("cannot parse Ion") and "unexpected decoder error" not in reason


@pytest.mark.parametrize("name", [n for n in HANGS if "symbol id" not in n])
def test_the_framing_check_refuses_each_of_them(name):
    with pytest.raises(ion_framing.BadFraming):
        ion_framing.check(HANGS[name])


@pytest.mark.parametrize("name", HANGS)
def test_each_of_them_is_the_decoders_own_error(name):
    # The 23-digit symbol id is well-formed UTF-8: it passes the check and is refused
    # by the pure-Python reader, which reads all Ion text.
    with pytest.raises(BadRecord, match="cannot parse Ion"):
        decode_record(HANGS[name])


def test_the_framing_check_lets_every_well_formed_record_through():
    from job.cli.tools.simulate.qldb import WorkloadSpec, encode, generate
    from connectors.formats.qldb_encode import encode_control

    for r in generate(WorkloadSpec(tables=2, documents=20, revisions=3, deletes=0.2, redactions=0.2, seed=9)):
        ion_framing.check(encode(r))
        decode_record(encode(r))
    ion_framing.check(encode_control("CREATED"))
    ion_framing.check(b"{a: 1}")  # text: only UTF-8 is checked


@pytest.mark.parametrize("data, words", [
    (b"\xe0\x01\x00\xea\xf0", "reserved type"),
    (b"\xe0\x01\x00\xea\xee\x00", "VarUInt"),
    (b"\xe0\x01\x00\xea\xef", "null length"),
    (b"\xe0\x01\x00\xea\xe2\x81\x83", "without a value"),
    (b"\xe0\x01\x00\xea\xd1\x81\x81", "struct field without a value"),
    (b"\xe0\x01\x00\xea\xb2\x21", "unexpected end of data"),
    (b"\xe0\x01\x00\xea\xb1\x22\x01\x01", "past the end of its container"),
])
def test_broken_binary_framing_says_what_is_wrong(data, words):
    with pytest.raises(ion_framing.BadFraming, match=words):
        ion_framing.check(data)


def test_nesting_deeper_than_the_limit_is_refused_without_recursion():
    inner = b"\x0f"  # a null in a list in a list ...
    for _ in range(ion_framing.MAX_DEPTH + 5):
        inner = (bytes([0xB0 | len(inner)]) + inner) if len(inner) < 14 else \
            b"\xbe" + _var_uint(len(inner)) + inner
    with pytest.raises(ion_framing.BadFraming, match="nested more than"):
        ion_framing.check(ion_framing.BVM + inner)


def _var_uint(n: int) -> bytes:
    out = [0x80 | (n & 0x7F)]
    n >>= 7
    while n:
        out.insert(0, n & 0x7F)
        n >>= 7
    return bytes(out)


# Found by the audit-line target: str.isdigit() is true for '²', which int() refuses, so
# parse_audit_line raised ValueError instead of BadAuditLine (the job would have failed).
@pytest.mark.parametrize("line", [
    "20261122 13:57:55,vm,ledgersync,127.0.0.1,9,\u00b26,QUERY,capture_db,'SELECT 1',0",
    "20261122 13:57:55,vm,ledgersync,127.0.0.1,\u00b9,26,QUERY,capture_db,'SELECT 1',0",
    "1700000000123456,prod,admin,10.0.1.25:\u00b3306,35,698024,CONNECT,,,0",
    "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0661\u0662\u0663,prod,admin,h,35,1,CONNECT,,,0",
])
def test_digits_that_are_not_ascii_are_a_bad_audit_line_not_a_crash(line):
    try:
        event = parse_audit_line(line)
    except BadAuditLine:
        return
    # Parsed only where the non-ASCII digits sit in free text (a host name).
    assert event.host.isascii() is False or event.port is None


def test_a_kinesis_record_holding_a_hang_keeps_its_neighbours():
    from connectors.formats import kpl
    from job.cli.tools.simulate.qldb import WorkloadSpec, encode, generate

    good = [encode(r) for r in generate(WorkloadSpec(tables=1, documents=2, revisions=1, seed=2))]
    (_key, data), = kpl.aggregate([("a", good[0]), ("b", HANGS["binary length overflow"]), ("c", good[1])])
    out = list(decode_kinesis_record("s", "shard", "1", data))
    assert [type(o).__name__ for o in out] == ["Decoded", "DeadLetter", "Decoded"]
    assert out[1].sub_sequence == 1


# Found while writing the cloudwatch-json target (60 s of fuzzing did not reach it: it
# takes about 1,000 brackets): json.loads raised RecursionError, which DecodeAuditFunction
# does not catch, so one such record would have failed the job.
def test_json_nested_too_deeply_in_a_subscription_record_is_a_bad_record():
    import gzip

    from connectors.formats.cloudwatch_logs import BadSubscriptionRecord, decode_subscription_record

    with pytest.raises(BadSubscriptionRecord, match="nested too deeply"):
        decode_subscription_record(gzip.compress(b"[" * 100_000))
    with pytest.raises(BadSubscriptionRecord, match="nested too deeply"):
        decode_subscription_record(gzip.compress(b'{"messageType": "DATA_MESSAGE", "logEvents": ' + b"[" * 5000))


def _ion_values():
    import datetime as _dt
    import decimal

    from hypothesis import strategies as hs

    scalars = hs.one_of(hs.none(), hs.booleans(), hs.integers(-2**80, 2**80), hs.floats(allow_nan=False),
                        hs.decimals(allow_nan=False, allow_infinity=False, places=3).map(decimal.Decimal),
                        hs.text(max_size=40), hs.binary(max_size=40),
                        hs.datetimes(timezones=hs.just(_dt.timezone.utc)))
    return hs.recursive(scalars, lambda inner: hs.one_of(hs.lists(inner, max_size=5),
                                                          hs.dictionaries(hs.text(max_size=20), inner, max_size=5)),
                        max_leaves=30)


def test_the_framing_check_accepts_whatever_the_ion_writer_writes():
    from amazon.ion import simpleion
    from hypothesis import given, settings

    @settings(max_examples=300, deadline=None)
    @given(_ion_values())
    def check(value):
        data = simpleion.dumps(value, binary=True)
        ion_framing.check(data)  # must not refuse well-formed binary Ion, however large its lengths
        ion_framing.check(simpleion.dumps(value, binary=False).encode("utf-8"))

    check()

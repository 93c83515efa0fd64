"""Coverage-guided fuzzing (atheris) of every decoder that takes bytes from outside.

    python -m tests.fuzz.decoders --all [--seconds 60]      # what `make fuzz` runs
    python -m tests.fuzz.decoders TARGET [libFuzzer flags]   # one target, e.g. -runs=1000 or a crash file

The contract each target checks: an input either decodes or raises the decoder's own
error (the one that becomes a dead letter); anything else (another exception, a hang
past ``-timeout``, memory past ``-rss_limit_mb``) is a bug. Each target starts from seeds
made of the test samples (the simulator's records, its bad records, the captured audit
logs) and keeps its corpus under ``.local/fuzz/TARGET/`` between runs; a crashing input
is written there as ``crash-*``.

Decoders behind a checksum or a compression layer get a second target that adds the
layer itself (``kpl-body`` recomputes the MD5, ``cloudwatch-json`` gzips), since random
bytes almost never pass an MD5 or a gzip CRC and the parser behind it would go unfuzzed.
A format added to the registry (``source.format``) needs a target here: the smoke test
(tests/unit/test_fuzz_smoke.py) fails until it has one.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "unit", "data")
DEFAULT_WORK_DIR = os.path.join(ROOT, ".local", "fuzz")
# Per input: a decoder that takes longer than this is hung; the process may grow to this.
TIMEOUT_S = 10
RSS_LIMIT_MB = 2048
MAX_LEN = 64 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    formats: tuple  # source.format values whose input this decoder sees
    check: Callable[[bytes], None]
    seeds: Callable[[], list]


# --- the checks (imports inside: atheris instruments what is imported after it starts) --

def check_kpl(data: bytes) -> None:
    from connectors.formats import kpl
    try:
        records = kpl.deaggregate(data)
    except kpl.BadAggregate:
        return
    for record in records:
        assert isinstance(record.data, bytes) and (record.error is None or isinstance(record.error, str))


def check_kpl_body(data: bytes) -> None:
    from connectors.formats import kpl
    check_kpl(kpl.MAGIC + data + hashlib.md5(data).digest())


def check_qldb(data: bytes) -> None:
    from connectors.formats.qldb import BadRecord, decode_record
    from connectors.rows.limits import MAX_DOCUMENT_BYTES, MAX_ID_CHARS
    try:
        decoded = decode_record(data)
    except BadRecord:
        return
    revision = decoded.revision
    if revision is not None:
        # What decodes must be storable: ids fit their columns, the document is JSON
        # MySQL takes (no NaN) and within the size limit.
        assert 0 < len(revision.document_id) <= MAX_ID_CHARS and len(revision.tx_id) <= MAX_ID_CHARS
        assert 0 <= revision.version < 2 ** 63
        if revision.data is not None:
            text = json.dumps(revision.data, ensure_ascii=False, allow_nan=False)
            assert len(text.encode("utf-8", "surrogatepass")) <= MAX_DOCUMENT_BYTES * 2
            text.encode("utf-8")  # no lone surrogates: utf8mb4 cannot hold them


def check_kinesis_record(data: bytes) -> None:
    from connectors.dead_letters import DeadLetter
    from connectors.formats.qldb import decode_kinesis_record
    for item in decode_kinesis_record("s", "shardId-000000000000", "1", data):
        if isinstance(item, DeadLetter):
            # decode_kinesis_record turns any exception into a dead letter so the job goes
            # on; one that is not the decoder's own error is still a bug.
            assert not item.reason.startswith("unexpected decoder error"), item.reason
            assert isinstance(item.raw, bytes)


def check_ion_json(data: bytes) -> None:
    from connectors.formats.ion_json import IonMappingError, ion_to_json
    from connectors.formats.qldb import BadRecord, parse_ion
    from connectors.rows.limits import MAX_JSON_DEPTH
    try:
        value = parse_ion(data)
    except BadRecord:
        return
    try:
        mapped = ion_to_json(value, max_depth=MAX_JSON_DEPTH)
    except IonMappingError:
        return
    json.dumps(mapped, ensure_ascii=False, allow_nan=False)


def check_cloudwatch(data: bytes) -> None:
    from connectors.formats.cloudwatch_logs import BadSubscriptionRecord, decode_subscription_record
    try:
        record = decode_subscription_record(data)
    except BadSubscriptionRecord:
        return
    for event in record.log_events:
        assert isinstance(event.message, str) and isinstance(event.timestamp_ms, int)


def check_cloudwatch_json(data: bytes) -> None:
    check_cloudwatch(gzip.compress(data, mtime=0))


def _text(data: bytes) -> str:
    # Log events are JSON strings: any code point, lone surrogates included.
    return data.decode("utf-8", "surrogatepass") if _valid(data) else data.decode("utf-16-le", "surrogatepass") \
        if len(data) % 2 == 0 else data.decode("latin-1")


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8", "surrogatepass")
        return True
    except UnicodeDecodeError:
        return False


def check_audit_line(data: bytes) -> None:
    from connectors.formats.audit_lines import BadAuditLine, parse_audit_line
    try:
        event = parse_audit_line(_text(data))
    except BadAuditLine:
        return
    assert isinstance(event.event_time_us, int) and isinstance(event.object, str)
    event.key, event.order_key  # noqa: B018 - computed for every event the replay sees


def check_audit_log(data: bytes) -> None:
    from connectors.formats.audit_lines import split_records
    text = _text(data)
    records, rest = split_records(text)
    assert "\n".join(records + [rest]) == text  # nothing lost or made up between records
    records, rest = split_records(text, final=True)
    assert rest == ""


def check_audit_statement(data: bytes) -> None:
    from connectors.formats.audit_statements import classify
    classify(_text(data))  # never raises: an unknown statement is a kind of its own


# --- seeds ----------------------------------------------------------------------------

def _sim():
    from job.cli.tools.simulate.qldb import WorkloadSpec, generate
    spec = WorkloadSpec(tables=2, documents=3, revisions=3, deletes=0.3, redactions=0.3, bad_records=11,
                        aggregate=4, block_summaries=True, control=True, seed=5)
    return spec, generate(spec)


def qldb_seeds() -> list:
    import datetime as _dt

    from connectors.formats.qldb_encode import encode_control, encode_revision
    from job.cli.tools.simulate.qldb import bad_samples, encode
    spec, revisions = _sim()
    hostile = {"document_id": 1, "redacted": True, "Name": "a", "name": 2, "x" * 70: 1.5, "select": None,
               "a b.c": [1, {"d": "e"}]}
    out = [encode(r) for r in revisions[:12]]
    out.append(encode_revision(table="T", document_id="d", version=1, data=hostile, tx_id="t",
                               tx_time=_dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)))
    out += [encode_control("CREATED"), encode_control("COMPLETED")]
    out += [b.payload for b in bad_samples(spec, revisions) if not b.envelope and len(b.payload) < MAX_LEN]
    return out


def kpl_seeds() -> list:
    from job.cli.tools.simulate.qldb import bad_samples, kinesis_records
    spec, revisions = _sim()
    out = [data for _key, data in kinesis_records(spec, revisions)[:8]]
    out += [b.payload for b in bad_samples(spec, revisions) if b.envelope]
    return [d for d in out if len(d) < MAX_LEN]


def kpl_body_seeds() -> list:
    from connectors.formats import kpl
    return [d[len(kpl.MAGIC):-kpl.DIGEST_SIZE] for d in kpl_seeds() if kpl.is_aggregated(d)]


def ion_seeds() -> list:
    texts = ["null.struct", "{a: 1, b: {c: 2}, a: 2}", "x::{a: y::1}", "[1, a, 1.10, -0., 1.2d5, 1d300]",
             "{t: 2007-02-23T12:14:33.079-08:00, u: 2007T, f: nan, g: +inf, h: 1.5e0}",
             "{b: {{aGVsbG8=}}, c: {{\"hello\"}}, s: (a + 1), n: 18446744073709551616}", "$0", "'a b'"]
    return [t.encode() for t in texts] + qldb_seeds()[:6]


def _log_lines() -> list:
    lines = []
    for name in ("server_audit_mariadb.log", "aurora_audit.log"):
        with open(os.path.join(DATA, name), encoding="utf-8") as handle:
            lines += handle.read().splitlines()
    return lines


def cloudwatch_json_seeds() -> list:
    # Plus deep nesting, which random mutations take long to build (json's RecursionError).
    return [gzip.decompress(d) for d in cloudwatch_seeds()] + [b'{"logEvents": ' + b"[" * 2000]


def cloudwatch_seeds() -> list:
    from connectors.formats.cloudwatch_logs import LogEvent, control_message, encode_subscription_record
    lines = _log_lines()
    out = [control_message("g", "s")]
    for start in range(0, min(len(lines), 40), 8):
        events = [LogEvent(id=str(i), timestamp_ms=1_700_000_000_000 + i, message=m)
                  for i, m in enumerate(lines[start:start + 8])]
        out.append(encode_subscription_record(log_group="/aws/rds/cluster/c/audit", log_stream="i-1", events=events))
    return out


def audit_line_seeds() -> list:
    return [line.encode("utf-8") for line in _log_lines()[:60]]


def audit_log_seeds() -> list:
    lines = _log_lines()
    return ["\n".join(lines[i:i + 6]).encode("utf-8") for i in range(0, min(len(lines), 60), 6)]


def audit_statement_seeds() -> list:
    from connectors.formats.audit_lines import BadAuditLine, parse_audit_line
    out = []
    for line in _log_lines():
        try:
            out.append(parse_audit_line(line).object.encode("utf-8"))
        except BadAuditLine:
            continue
    out += [b"/* c */ WITH x AS (SELECT 1) UPDATE t SET a = 1", b"SET autocommit=0", b"ROLLBACK TO SAVEPOINT s1",
            b"LOAD DATA INFILE 'x' INTO TABLE t", b"CREATE TABLE t (a INT)"]
    return out[:80]


def _changes_check(name: str) -> Callable[[bytes], None]:
    """A keyed change stream's decoder: a RowChange or a Piece, or its own BadChange."""
    def check(data: bytes) -> None:
        from connectors.formats.changes import BadChange, Piece, RowChange
        from connectors.formats.registry import format_spec

        spec = format_spec(name)
        try:
            out = spec.decode(data, _changes_settings(name))
        except BadChange:
            return
        assert isinstance(out, (RowChange, Piece)), type(out)
    return check


def _changes_settings(name: str):
    from connectors.formats import dsql_cdc
    from job.cli.tools.simulate.changes import DSQL_KEYS

    if name == "dsql-cdc":
        return dsql_cdc.DsqlSettings(keys=dsql_cdc.parse_keys(DSQL_KEYS))
    from connectors.formats import dynamodb

    return dynamodb.DynamoDbSettings()


def dynamodb_seeds() -> list:
    from job.cli.tools.simulate.changes import ChangesSpec, dynamodb_delivery, generate_dynamodb

    spec = ChangesSpec(rows=3, changes=3, bad=5)
    records = [data for _, data in dynamodb_delivery(spec, generate_dynamodb(spec)).records]
    return list(dict.fromkeys(records))[:60]


def dsql_seeds() -> list:
    from job.cli.tools.simulate.changes import ChangesSpec, dsql_delivery, generate_dsql

    spec = ChangesSpec(rows=4, changes=3, split_bytes=300, bad=4, incomplete=1)
    records = [data for _, data in dsql_delivery(spec, generate_dsql(spec)).records]
    return list(dict.fromkeys(records))[:60]


TARGETS = {t.name: t for t in (
    Target("kpl", ("qldb",), check_kpl, kpl_seeds),
    Target("kpl-body", ("qldb",), check_kpl_body, kpl_body_seeds),
    Target("qldb", ("qldb",), check_qldb, qldb_seeds),
    Target("kinesis-record", ("qldb",), check_kinesis_record, kpl_seeds),
    Target("ion-json", ("qldb",), check_ion_json, ion_seeds),
    Target("cloudwatch", ("cloudwatch-audit",), check_cloudwatch, cloudwatch_seeds),
    Target("cloudwatch-json", ("cloudwatch-audit",), check_cloudwatch_json, cloudwatch_json_seeds),
    Target("audit-line", ("cloudwatch-audit",), check_audit_line, audit_line_seeds),
    Target("audit-log", ("cloudwatch-audit",), check_audit_log, audit_log_seeds),
    Target("audit-statement", ("cloudwatch-audit",), check_audit_statement, audit_statement_seeds),
    Target("dsql-cdc", ("dsql-cdc",), _changes_check("dsql-cdc"), dsql_seeds),
    Target("dynamodb", ("dynamodb",), _changes_check("dynamodb"), dynamodb_seeds),
)}


# --- running --------------------------------------------------------------------------

def write_seeds(target: Target, directory: str) -> int:
    os.makedirs(directory, exist_ok=True)
    seeds = target.seeds()
    for seed in seeds:
        with open(os.path.join(directory, hashlib.sha1(seed).hexdigest()), "wb") as handle:
            handle.write(seed)
    return len(seeds)


def fuzz_one(name: str, libfuzzer_args: list) -> None:
    """In this process: instrument our decoders, then hand over to libFuzzer (never returns)."""
    import atheris

    target = TARGETS[name]
    with atheris.instrument_imports(include=["connectors"]):
        target.check(b"")  # imports every module the check needs, instrumented
    atheris.Setup([sys.argv[0], *libfuzzer_args], target.check)
    atheris.Fuzz()


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STATS = re.compile(r"#(\d+)\s+(?:pulse|NEW|REDUCE|DONE|INITED)\s+cov: (\d+)")


def run_target(name: str, seconds: int, work_dir: str) -> dict:
    """Fuzz one target in a child process for ``seconds``; its outcome and counts."""
    base = os.path.join(work_dir, name)
    corpus, seeds = os.path.join(base, "corpus"), os.path.join(base, "seeds")
    os.makedirs(corpus, exist_ok=True)
    seeded = write_seeds(TARGETS[name], seeds)
    command = [sys.executable, "-m", "tests.fuzz.decoders", name, f"-max_total_time={seconds}",
               f"-timeout={TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}", f"-max_len={MAX_LEN}",
               f"-artifact_prefix={base}{os.sep}", "-print_final_stats=1", corpus, seeds]
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            timeout=seconds + 120 + TIMEOUT_S)
    output = result.stdout + result.stderr
    runs = [int(m.group(1)) for m in _DONE.finditer(output)] or \
        [int(m) for m in re.findall(r"stat::number_of_executed_units:\s+(\d+)", output)]
    coverage = [int(m.group(2)) for m in _STATS.finditer(output)]
    artifacts = re.findall(r"Test unit written to (\S+)", output)
    return {"target": name, "ok": result.returncode == 0 and not artifacts, "returncode": result.returncode,
            "executions": runs[-1] if runs else 0, "coverage": coverage[-1] if coverage else 0,
            "seeds": seeded, "corpus": len(os.listdir(corpus)), "seconds": round(time.monotonic() - started, 1),
            "artifacts": artifacts, "output": output}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TARGETS:
        fuzz_one(argv[0], argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="fuzz every target, one after another")
    parser.add_argument("--targets", default="", help="comma-separated target names (default: all)")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")),
                        help="per target (default FUZZ_SECONDS or 60)")
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR, help="corpora and crash files (default .local/fuzz)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    names = [n for n in args.targets.split(",") if n] or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not (args.all or args.targets):
        parser.error(f"unknown target(s) {unknown}; targets: {', '.join(TARGETS)}" if unknown
                     else "give --all or --targets")
    results = []
    for name in names:
        outcome = run_target(name, args.seconds, args.work_dir)
        results.append(outcome)
        state = "ok" if outcome["ok"] else f"FAILED (exit {outcome['returncode']}) {' '.join(outcome['artifacts'])}"
        print(f"fuzz: {name:16} {outcome['executions']:>9} executions in {outcome['seconds']:6.1f}s, "
              f"coverage {outcome['coverage']}, corpus {outcome['corpus']} (seeds {outcome['seeds']}): {state}",
              flush=True)
        if not outcome["ok"]:
            print(outcome["output"][-4000:], file=sys.stderr)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([{k: v for k, v in r.items() if k != "output"} for r in results], handle, indent=2)
    failed = [r["target"] for r in results if not r["ok"]]
    print(f"fuzz: {len(results) - len(failed)}/{len(results)} targets clean"
          + (f"; failed: {', '.join(failed)} (inputs under {args.work_dir})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

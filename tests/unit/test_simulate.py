import collections
import hashlib

from connectors.dead_letters import DeadLetter
from connectors.formats.qldb import BLOCK_SUMMARY, CONTROL, REVISION_DETAILS, decode_kinesis_record
from job.cli.tools.simulate.qldb import (BAD_KINDS, SimRevision, WorkloadSpec, bad_samples, delivery, encode, expected_current,
                          generate, kinesis_records)


def _digest(specs) -> str:
    h = hashlib.sha256()
    for spec in specs:
        for r in delivery(spec, generate(spec)):
            h.update(repr((r.table, r.document_id, r.version, r.data, r.tx_id, r.tx_time)).encode())
            h.update(encode(r))
    return h.hexdigest()


def test_default_workloads_are_what_they_were_before_the_new_fields():
    # Computed with the simulator of commit 51d4560 (before deletes, aggregation, ...):
    # the same specs must still put the very same bytes on the stream.
    specs = [WorkloadSpec(), WorkloadSpec(tables=3, documents=60, revisions=4, duplicates=0.2, shuffle=True, seed=7)]
    assert _digest(specs) == "2b42dacf01200c5ea9d8415a150751b703e49ce685692e7cf2c6e56a421fc500"
    spec = WorkloadSpec(documents=5)
    assert kinesis_records(spec, generate(spec)) == [(r.document_id, encode(r)) for r in generate(spec)]


def test_deletes_and_redactions_leave_the_documents_data_alone():
    plain = WorkloadSpec(tables=2, documents=30, revisions=3, seed=4)
    extra = WorkloadSpec(tables=2, documents=30, revisions=3, seed=4, deletes=0.3, redactions=0.3)
    before, after = generate(plain), generate(extra)
    data = [(r.table, r.document_id, r.version, r.data) for r in after if not r.deleted and not r.redacted]
    assert data == [(r.table, r.document_id, r.version, r.data) for r in before]
    deletes = [r for r in after if r.deleted]
    redactions = [r for r in after if r.redacted]
    assert 5 <= len(deletes) <= 35 and 5 <= len(redactions) <= 35
    assert all(r.version == 3 and r.data is None for r in deletes)
    originals = {(r.document_id, r.version): r for r in after if not r.redacted}
    for r in redactions:  # an older revision again, with its original metadata
        original = originals[(r.document_id, r.version)]
        assert r.version < 2 and (r.tx_id, r.tx_time) == (original.tx_id, original.tx_time)


def test_expected_current_drops_deleted_documents_and_ignores_redactions():
    def rev(doc, version, **kw):
        return SimRevision(table="T", document_id=doc, version=version, data=None if kw else {"v": version},
                           tx_id="tx", tx_time=None, **kw)

    revisions = [rev("a", 0), rev("a", 1), rev("a", 2, deleted=True), rev("b", 0), rev("b", 1),
                 rev("b", 0, redacted=True), rev("c", 0), rev("c", 1, redacted=True)]
    current = expected_current(revisions)
    assert {k: r.version for k, r in current.items()} == {("T", "b"): 1, ("T", "c"): 0}
    assert current[("T", "b")].data == {"v": 1}


def test_expected_current_breaks_equal_versions_by_tx_id_as_the_upsert_does():
    def rev(version, tx_id, deleted=False):
        return SimRevision(table="T", document_id="a", version=version, data=None if deleted else {"tx": tx_id},
                           tx_id=tx_id, tx_time=None, deleted=deleted)

    for revisions in ([rev(1, "b"), rev(1, "c"), rev(1, "a")], [rev(1, "c"), rev(1, "b"), rev(0, "z")]):
        assert expected_current(revisions)[("T", "a")].tx_id == "c"
    assert expected_current([rev(1, "b"), rev(1, "a", deleted=True)])[("T", "a")].tx_id == "b"
    assert expected_current([rev(1, "a"), rev(1, "b", deleted=True)]) == {}


def test_an_aggregated_workload_decodes_to_exactly_what_was_generated():
    spec = WorkloadSpec(tables=2, documents=25, revisions=3, duplicates=0.2, shuffle=True, seed=9, aggregate=7,
                        deletes=0.2, redactions=0.2, block_summaries=True, control=True,
                        bad_records=2 * len(BAD_KINDS))
    revisions = generate(spec)
    records = kinesis_records(spec, revisions)
    kinds = collections.Counter()
    decoded, letters, controls = [], [], []
    for n, (_key, data) in enumerate(records):
        for item in decode_kinesis_record("s", "h", str(n), data):
            if isinstance(item, DeadLetter):
                letters.append(item)
                continue
            kinds[item.record_type] += 1
            if item.record_type == REVISION_DETAILS:
                r = item.revision
                decoded.append((r.table, r.document_id, r.version, r.deleted, r.redacted))
            elif item.record_type == CONTROL:
                controls.append(item.detail["controlRecordType"])
    delivered = delivery(spec, revisions)
    assert sorted(decoded) == sorted((r.table, r.document_id, r.version, r.deleted, r.redacted) for r in delivered)
    assert kinds[BLOCK_SUMMARY] == len({r.tx_id for r in revisions})
    assert controls == ["CREATED", "COMPLETED"]
    assert len(letters) == spec.bad_records
    expected_reasons = collections.Counter(s.reason for s in bad_samples(spec, revisions))
    for reason, count in expected_reasons.items():
        assert sum(reason in letter.reason for letter in letters) >= count, reason
    # Several revisions per Kinesis record, and every bad user record has good neighbours.
    assert len(records) < len(delivered) / 3
    assert all(letter.sub_sequence >= 0 for letter in letters if "aggregated record" not in letter.reason)

"""Property tests of order mode's pure rules (``OrderedDocument``, job/rules/ordering.py):
random histories delivered at least once in any order, some versions lost.

What MySQL ends up holding, with restarts and through the real writer and its SQL, is
tests/integration/test_writer_properties.py's (both modes, against the real MariaDB).
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.formats.qldb import Revision
from job.rules.ordering import GAP_SKIP, GAP_WAIT, OrderedDocument
from job.cli.tools.simulate.qldb import expected_current

TIMEOUT = 1000


@st.composite
def histories(draw):
    """Revisions of a few documents; some end in a delete."""
    revisions = []
    for d in range(draw(st.integers(1, 4))):
        versions = draw(st.integers(1, 5))
        deleted = draw(st.booleans())
        for v in range(versions):
            is_delete = deleted and v == versions - 1 and v > 0
            revisions.append(Revision(table="T", document_id=f"d{d}", version=v, tx_id=f"{d}-{v}", tx_time=None,
                                      data=None if is_delete else {"v": v}, deleted=is_delete))
    return revisions


@st.composite
def deliveries(draw, revisions):
    """At least once, any order: every revision once plus duplicates, shuffled."""
    extra = draw(st.lists(st.sampled_from(revisions), max_size=len(revisions)))
    return draw(st.permutations(revisions + extra))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_order_mode_applies_versions_strictly_in_sequence(data):
    revisions = data.draw(histories())
    delivered = data.draw(deliveries(revisions))
    state = {}
    applied_order: dict = {}
    for now, r in enumerate(delivered):
        doc = state.get(r.document_id) or OrderedDocument()
        doc, applied = doc.offer(r, now, TIMEOUT)
        state[r.document_id] = doc
        applied_order.setdefault(r.document_id, []).extend(a.version for a in applied)
    for doc_id, versions in applied_order.items():
        assert versions == list(range(len(versions)))  # 0, 1, 2, ... never a jump or repeat
        assert len(versions) == 1 + max(r.version for r in revisions if r.document_id == doc_id)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), action=st.sampled_from([GAP_SKIP, GAP_WAIT]))
def test_gaps_are_skipped_or_waited_for_never_silently(data, action):
    revisions = data.draw(histories())
    lost_at = data.draw(st.sets(st.integers(0, len(revisions) - 1), max_size=2))
    lost = {(revisions[i].document_id, revisions[i].version) for i in lost_at}
    delivered = [r for r in data.draw(deliveries(revisions)) if (r.document_id, r.version) not in lost]
    state = {}
    gaps = []
    last_applied = {}  # versions apply in order (the test above), so the last one is the current view's
    for now, r in enumerate(delivered):
        doc = state.get(r.document_id) or OrderedDocument()
        doc, applied = doc.offer(r, now, TIMEOUT)
        state[r.document_id] = doc
        last_applied.update((a.document_id, a) for a in applied)
    for doc_id, doc in state.items():
        now = len(delivered)
        for _ in range(3):  # each gap gets its own wait: at most two lost versions, two gaps
            now += TIMEOUT
            had_waiting = bool(doc.waiting)
            doc, applied, gap = doc.on_timeout(now, TIMEOUT, action)
            last_applied.update((a.document_id, a) for a in applied)
            if gap:
                gaps.append((doc_id, gap))
            if action == GAP_SKIP:
                assert (gap is not None) == had_waiting  # a wait that ran out is always reported
            elif had_waiting and not any(g[1].from_version == doc.next_version for g in gaps if g[0] == doc_id):
                raise AssertionError("a gap waited for was not reported")
        if action == GAP_SKIP:
            assert not doc.waiting
    received = [r for r in revisions if (r.document_id, r.version) not in lost]
    current = {doc_id: r for doc_id, r in last_applied.items() if not r.deleted}
    if action == GAP_SKIP:
        assert current == {doc: r for (_t, doc), r in expected_current(received).items()}
    else:  # nothing past a gap is applied
        for doc_id, held in current.items():
            assert all(any(r.document_id == doc_id and r.version == v for r in received)
                       for v in range(held.version + 1))
    for doc_id, gap in gaps:
        assert gap.from_version <= gap.to_version
        assert all(not (r.document_id == doc_id and gap.from_version <= r.version <= gap.to_version)
                   for r in received)

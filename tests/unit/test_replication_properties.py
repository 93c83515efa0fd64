"""Property tests of the replication rules: random histories, at-least-once delivery in
any order, restarts at any point; the end state must equal the oracle's.

The system is modelled as the job runs it: Flink state per document (Top-1's newest
version, or ``OrderedDocument`` in order mode) in front of the MySQL writer's rules
(the guarded upsert, tombstones, insert-once history), which are modelled here by
``MySqlModel`` exactly as ``connectors/mysql/writer.py`` states them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.formats.qldb import Revision
from job.rules.ordering import GAP_SKIP, GAP_WAIT, OrderedDocument, apply_newest
from job.cli.tools.simulate.qldb import expected_current
from tests.support.oracle import expected_history

TIMEOUT = 1000


@st.composite
def histories(draw):
    """Revisions of a few documents; some end in a delete; one redaction maybe."""
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


@dataclass
class MySqlModel:
    current: dict = field(default_factory=dict)  # doc -> revision
    tombstones: dict = field(default_factory=dict)  # doc -> version
    history: dict = field(default_factory=dict)  # (doc, version) -> revision

    def apply_current(self, r: Revision) -> None:
        if r.deleted:
            self.tombstones[r.document_id] = max(self.tombstones.get(r.document_id, -1), r.version)
            held = self.current.get(r.document_id)
            if held is not None and held.version <= r.version:
                del self.current[r.document_id]
            return
        if r.version <= self.tombstones.get(r.document_id, -1):
            return
        held = self.current.get(r.document_id)
        if held is None or r.version > held.version:
            self.current[r.document_id] = r

    def apply_history(self, r: Revision) -> None:
        self.history.setdefault((r.document_id, r.version), r)

    def lookup(self, document_id: str) -> tuple:
        held = self.current.get(document_id)
        return (None if held is None else held.version, self.tombstones.get(document_id))


def run(delivered: list, order: bool, restarts: list, lose_state: list, mysql: MySqlModel, action=GAP_SKIP):
    """Feed the delivered sequence; at each restart point the job goes back to its last
    checkpoint (or to nothing if lose_state) and reads again from there."""
    state: dict = {}
    checkpoint = (0, {})
    position = 0
    now = 0
    restart_at = dict(zip(restarts, lose_state))
    done_restarts = set()
    while position < len(delivered):
        if position in restart_at and position not in done_restarts:
            done_restarts.add(position)
            if restart_at[position]:
                state, position = {}, 0  # from nothing but MySQL: read the stream again
            else:
                position, state = checkpoint[0], dict(checkpoint[1])
            continue
        r = delivered[position]
        position += 1
        now += 1
        mysql.apply_history(r)
        if order:
            doc = state.get(r.document_id) or OrderedDocument.starting_after(*mysql.lookup(r.document_id))
            doc, applied = doc.offer(r, now, TIMEOUT)
            state[r.document_id] = doc
        else:
            chosen = apply_newest(state.get(r.document_id), r)
            applied = [chosen] if chosen else []
            if chosen:
                state[r.document_id] = chosen
        for a in applied:
            mysql.apply_current(a)
        if position % 3 == 0:
            checkpoint = (position, dict(state))
    if order:  # the end of the stream: every wait runs out
        for doc_id, doc in list(state.items()):
            while doc.waiting and action == GAP_SKIP:
                now += TIMEOUT
                doc, applied, _gap = doc.on_timeout(now, TIMEOUT, action)
                for a in applied:
                    mysql.apply_current(a)
            state[doc_id] = doc
    return state


def _expected(revisions):
    current = {doc: r for (_t, doc), r in expected_current(revisions).items()}
    history = {(doc, v): r for (_t, doc, v), r in expected_history(revisions).items()}
    return current, history


@settings(max_examples=300, deadline=None)
@given(data=st.data(), order=st.booleans())
def test_any_delivery_order_with_restarts_ends_equal_to_the_oracle(data, order):
    revisions = data.draw(histories())
    delivered = data.draw(deliveries(revisions))
    restarts = data.draw(st.lists(st.integers(0, len(delivered) - 1), max_size=3, unique=True))
    lose = data.draw(st.lists(st.booleans(), min_size=len(restarts), max_size=len(restarts)))
    mysql = MySqlModel()
    run(delivered, order, restarts, lose, mysql)
    current, history = _expected(revisions)
    assert mysql.current == current
    assert mysql.history == history


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
    mysql = MySqlModel()
    for now, r in enumerate(delivered):
        doc = state.get(r.document_id) or OrderedDocument()
        doc, applied = doc.offer(r, now, TIMEOUT)
        state[r.document_id] = doc
        for a in applied:
            mysql.apply_current(a)
    for doc_id, doc in state.items():
        now = len(delivered)
        for _ in range(3):  # each gap gets its own wait: at most two lost versions, two gaps
            now += TIMEOUT
            had_waiting = bool(doc.waiting)
            doc, applied, gap = doc.on_timeout(now, TIMEOUT, action)
            for a in applied:
                mysql.apply_current(a)
            if gap:
                gaps.append((doc_id, gap))
            if action == GAP_SKIP:
                assert (gap is not None) == had_waiting  # a wait that ran out is always reported
            elif had_waiting and not any(g[1].from_version == doc.next_version for g in gaps if g[0] == doc_id):
                raise AssertionError("a gap waited for was not reported")
        if action == GAP_SKIP:
            assert not doc.waiting
    received = [r for r in revisions if (r.document_id, r.version) not in lost]
    if action == GAP_SKIP:
        current, _ = _expected(received)
        assert mysql.current == current
    else:  # nothing past a gap is applied
        for doc_id, held in mysql.current.items():
            assert all(any(r.document_id == doc_id and r.version == v for r in received)
                       for v in range(held.version + 1))
    for doc_id, gap in gaps:
        assert gap.from_version <= gap.to_version
        assert all(not (r.document_id == doc_id and gap.from_version <= r.version <= gap.to_version)
                   for r in received)

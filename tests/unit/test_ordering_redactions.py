"""Order mode and redactions: a journal export holds only the redacted revision of a
redacted version, so the redaction must hold that version's place in the sequence."""
from __future__ import annotations

from connectors.formats.qldb import Revision
from job.rules.ordering import OrderedDocument


def _rev(version: int, redacted: bool = False) -> Revision:
    return Revision(table="T", document_id="d", version=version, tx_id=f"tx{version}", tx_time=None,
                    data=None if redacted else {"v": version}, redacted=redacted)


def _feed(revisions) -> tuple:
    state, applied = OrderedDocument(), []
    for r in revisions:
        state, out = state.offer(r, 0, 1000)
        applied += out
    return state, [(r.version, r.redacted) for r in applied]


def test_a_redaction_fills_its_place_and_is_not_applied():
    state, applied = _feed([_rev(0), _rev(2), _rev(1, redacted=True), _rev(3)])
    assert applied == [(0, False), (2, False), (3, False)]
    assert state.next_version == 4 and not state.waiting


def test_the_original_takes_the_place_of_a_waiting_redaction():
    _state, applied = _feed([_rev(2), _rev(1, redacted=True), _rev(1), _rev(0)])
    assert applied == [(0, False), (1, False), (2, False)]


def test_a_redaction_of_an_applied_version_changes_nothing():
    state, applied = _feed([_rev(0), _rev(1), _rev(0, redacted=True)])
    assert applied == [(0, False), (1, False)] and state.next_version == 2

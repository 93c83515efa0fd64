"""`run --until-caught-up`'s test (job/cli/local/runner.py CaughtUp): the tip must hold, with
the count of records read unchanged, across a whole checkpoint triggered after it was
reached, with nothing pending in the writers, for CAUGHT_UP_SETTLE_S."""
from job.cli.local.runner import CAUGHT_UP_SETTLE_S, CaughtUp, Progress
from job.cli.local.source_status import ListedShard, SourceStatus


def _progress(records: int, checkpoint: int, at_tip: bool = True, pending: int = 0) -> Progress:
    source = SourceStatus(shards=[ListedShard("shardId-0", False)], lag_ms={"shardId-0": 0 if at_tip else 500},
                          fetched={"shardId-0": 0 if at_tip else 2}, records_read=records, metrics_seen=True)
    return Progress(source=source, checkpoint=checkpoint, writers_pending=pending)


def test_caught_up_once_a_checkpoint_triggered_after_the_tip_completes_and_the_tip_held():
    test = CaughtUp()
    assert not test.check(_progress(10, checkpoint=2), triggered=3, now=0.0)  # the tip reached: the wait starts
    assert not test.check(_progress(10, checkpoint=3), triggered=3, now=CAUGHT_UP_SETTLE_S)  # chk-3 began before
    assert not test.check(_progress(10, checkpoint=4), triggered=4, now=CAUGHT_UP_SETTLE_S / 2)  # not settled yet
    assert test.check(_progress(10, checkpoint=4), triggered=4, now=CAUGHT_UP_SETTLE_S)


def test_a_record_read_or_a_shard_behind_restarts_the_wait():
    test = CaughtUp()
    test.check(_progress(10, checkpoint=2), triggered=3, now=0.0)
    assert not test.check(_progress(11, checkpoint=4), triggered=4, now=10.0)  # one more read: wait again
    assert not test.check(_progress(11, checkpoint=5), triggered=5, now=11.0)
    assert not test.check(_progress(11, checkpoint=5, at_tip=False), triggered=5, now=20.0)
    assert not test.check(_progress(11, checkpoint=6), triggered=6, now=30.0)
    assert test.check(_progress(11, checkpoint=7), triggered=7, now=30.0 + CAUGHT_UP_SETTLE_S)


def test_not_caught_up_while_a_writer_has_rows_pending():
    test = CaughtUp()
    test.check(_progress(10, checkpoint=2), triggered=3, now=0.0)
    assert not test.check(_progress(10, checkpoint=4, pending=1), triggered=4, now=10.0)
    assert test.check(_progress(10, checkpoint=4), triggered=4, now=10.0)

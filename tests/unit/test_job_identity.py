"""Restores belong to the job that wrote them (issue: --from-latest-checkpoint restored
another job's checkpoint and exited 0 having read nothing)."""
import os

import pytest

from job.config.properties import parse_groups
from job.cli.local.job_identity import ForeignRestore, check_restore, job_identity, write_identity
from job.cli.local.runner import latest_checkpoint, newest_checkpoint_of_job


def _props(stream="orders", database="replica", fmt="qldb"):
    return parse_groups([
        {"PropertyGroupId": "source", "PropertyMap": {"stream.name": stream, "format": fmt}},
        {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "db", "mysql.database": database,
                                                   "mysql.user": "u", "mysql.password": "p"}},
    ])


def _checkpoint(root, job, number, identity=None, mtime=None):
    chk = root / job / f"chk-{number}"
    chk.mkdir(parents=True)
    (chk / "_metadata").write_bytes(b"meta")
    if mtime is not None:
        os.utime(chk / "_metadata", (mtime, mtime))
    if identity is not None:
        write_identity(str(root / job), identity)
    return str(chk)


def test_latest_checkpoint_picks_only_this_jobs(tmp_path):
    mine, other = job_identity(_props()), job_identity(_props(stream="payments"))
    ours = _checkpoint(tmp_path, "a", 3, mine, mtime=1000)
    _checkpoint(tmp_path, "b", 7, other, mtime=2000)  # newer, another stream
    _checkpoint(tmp_path, "c", 9, None, mtime=3000)  # newest, says nothing of whose it is
    assert latest_checkpoint(str(tmp_path), mine) == ours
    assert latest_checkpoint(str(tmp_path), job_identity(_props(database="elsewhere"))) is None


def test_a_foreign_savepoint_is_refused_naming_whose_it_is(tmp_path):
    savepoint = tmp_path / "savepoint-1234"
    savepoint.mkdir()
    write_identity(str(savepoint), job_identity(_props(stream="payments")))
    with pytest.raises(ForeignRestore, match=r"stream payments .*differs in source.stream.name"):
        check_restore(str(savepoint), job_identity(_props()))
    assert check_restore(str(savepoint), job_identity(_props(stream="payments"))) is None


def test_a_checkpoint_of_another_job_is_refused_through_its_job_directory(tmp_path):
    chk = _checkpoint(tmp_path, "job", 2, job_identity(_props(fmt="dynamodb")))
    with pytest.raises(ForeignRestore, match="source.format"):
        check_restore(chk, job_identity(_props()))


def test_a_savepoint_that_says_nothing_is_restored_with_a_warning(tmp_path):
    assert "does not say which job" in check_restore(str(tmp_path), job_identity(_props()))


def test_newest_checkpoint_of_one_job(tmp_path):
    _checkpoint(tmp_path, "job", 2, mtime=1000)
    newest = _checkpoint(tmp_path, "job", 5, mtime=2000)
    assert newest_checkpoint_of_job(str(tmp_path / "job")) == newest
    assert newest_checkpoint_of_job(str(tmp_path / "none")) is None

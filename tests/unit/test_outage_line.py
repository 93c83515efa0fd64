"""An outage the writer or the source is retrying shows in the progress line, with its
cause and how long it has lasted (issue 23, defect 2)."""
import time

import pymysql

from connectors.mysql.client import MySqlClient, MySqlSettings, outage_text
from job.cli.local.runner import summarize


def test_a_refused_connection_reads_as_unreachable_with_the_cause():
    exc = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1' "
                                             "([Errno 111] Connection refused)")
    assert outage_text(exc) == "unreachable: [Errno 111] Connection refused"


def test_the_client_reports_trouble_while_it_retries_and_clears_it_after():
    told = []
    attempts = iter([pymysql.err.OperationalError(2003, "Can't connect (timed out)"),
                     pymysql.err.OperationalError(2003, "Can't connect (timed out)"), None])

    def work():
        failure = next(attempts)
        if failure:
            raise failure
        return "done"

    client = MySqlClient(MySqlSettings(host="db.example", port=3306, database="d", user="u"), what="x",
                         opener=lambda: None, sleep=lambda _s: None,
                         on_trouble=lambda text, since: told.append((text, since)))
    assert client.retrying(work) == "done"
    assert [t for t, _ in told] == ["MySQL db.example:3306 unreachable: timed out"] * 2 + [None]
    assert told[0][1] == told[1][1] > 0  # the same outage, since its first failure


def test_the_progress_line_names_the_outage_and_how_long():
    board = {"writer-0": {"kind": "writer", "pending": True, "written": 0,
                          "trouble": "MySQL 127.0.0.1:43999 unreachable: connection refused",
                          "trouble_since": time.time() - 35}}
    line = summarize(board).line()
    assert "MySQL 127.0.0.1:43999 unreachable: connection refused for 35 s" in line
    assert "waiting for shards" in line


def test_held_split_records_keep_a_run_from_being_caught_up_and_show_their_timeout():
    board = {"reassembly-0": {"kind": "reassembly", "held": 2, "next_deadline_ms": (time.time() + 42) * 1000},
             "reassembly-1": {"kind": "reassembly", "held": 1, "next_deadline_ms": None}}
    progress = summarize(board)
    assert progress.split_held == 3
    assert "holding 3 incomplete split records, the first times out in 4" in progress.line()

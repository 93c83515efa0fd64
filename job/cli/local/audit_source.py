"""A real audit-log source for the demo and tests: a second MariaDB with ``server_audit``.

It runs beside the shared MariaDB (never instead of it) on its own port and data
directory under ``.local/audit-source/``, and writes its audit log to
``.local/audit-source/server_audit.log`` in MariaDB's own file format. ``up`` is
idempotent; ``down`` stops only this server, by its pid.

Also here: a workload of inserts, updates and deletes from several connections at
once (``workload``), and a table-by-table comparison of a source database with its
replica (``compare_databases``).
"""
from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from job.cli.local import services
from job.cli.local.runner import DEFAULT_LOCAL_DIR

PORT = int(os.environ.get("LEDGERSYNC_AUDIT_SOURCE_PORT", "13307"))
HOST = services.HOST
USER = services.MYSQL_USER
PASSWORD = services.MYSQL_PASSWORD
# A rotated log is renamed to .1, .2, ...; ship-audit follows the rename. Big enough
# that tests rarely see a rotation, small enough to keep .local/ tidy.
ROTATE_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class SourcePaths:
    root: str

    @property
    def base(self) -> str:
        return os.path.join(self.root, "audit-source")

    @property
    def audit_log(self) -> str:
        return os.path.join(self.base, "server_audit.log")


def default_paths(local_dir: str = DEFAULT_LOCAL_DIR) -> SourcePaths:
    return SourcePaths(local_dir)


def _say(message: str) -> None:
    print(f"audit-source: {message}", flush=True)


def connect(database: Optional[str] = None, autocommit: bool = True):
    import pymysql

    return pymysql.connect(host=HOST, port=PORT, user=USER, password=PASSWORD, database=database,
                           charset="utf8mb4", autocommit=autocommit, connect_timeout=5)


def server(paths: SourcePaths) -> "services.MariaDB":
    """The audited MariaDB: the shared launcher, with the audit plugin writing its own file."""
    return services.MariaDB(
        "audit source MariaDB", paths.base, PORT, "LEDGERSYNC_AUDIT_SOURCE_PORT",
        buffer_pool="64M", max_connections=100, extra_args=(
            # The audit plugin Debian's mariadb-server ships (server_audit.so), writing its own file.
            "--plugin-load-add=server_audit", "--server-audit-logging=ON",
            "--server-audit-events=CONNECT,QUERY", "--server-audit-output-type=file",
            f"--server-audit-file-path={paths.audit_log}",
            f"--server-audit-file-rotate-size={ROTATE_SIZE}", "--server-audit-file-rotations=9",
            # 0 = no limit: the default (1024 bytes) cuts long statements, which can't be replayed.
            "--server-audit-query-log-limit=0",
        ))


def up(local_dir: str = DEFAULT_LOCAL_DIR) -> SourcePaths:
    """Start the audited MariaDB if it is not running; wait until it answers."""
    paths = default_paths(local_dir)
    mariadb = server(paths)
    started = mariadb.start()
    _say(f"{'started' if started else 'already running'} (pid {mariadb.pid()}) on {HOST}:{PORT}, "
         f"audit log {paths.audit_log}")
    return paths


def down(local_dir: str = DEFAULT_LOCAL_DIR) -> None:
    pid = server(default_paths(local_dir)).stop()
    _say(f"stopped (pid {pid})" if pid else "not running")


def status(local_dir: str = DEFAULT_LOCAL_DIR) -> bool:
    paths = default_paths(local_dir)
    mariadb = server(paths)
    pid = mariadb.pid()
    try:
        answering = bool(pid) and mariadb.answers()
    except Exception:
        answering = False
    state = "up" if answering else ("running, not answering" if pid else "down")
    print(f"audit source MariaDB: {state}" + (f" (pid {pid}, {HOST}:{PORT}, audit log {paths.audit_log})" if pid else ""))
    return answering


# --- a workload ------------------------------------------------------------------

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS `accounts` ("
    " `id` INT NOT NULL PRIMARY KEY, `owner` VARCHAR(100) NOT NULL,"
    " `balance` DECIMAL(12,2) NOT NULL, `note` TEXT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS `counters` ("
    " `name` VARCHAR(32) NOT NULL PRIMARY KEY, `n` BIGINT NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
)

# Query text the audit line must carry intact: commas, quotes, backslashes, newlines,
# tabs, non-ASCII. (The client escapes them in the SQL text; see README on what the
# plugin does to raw whitespace.)
NASTY_NOTES = (
    "plain", "a, b, c", "it's", 'say "hi"', "back\\slash", "two\nlines", "tab\there",
    "Zürich – São Paulo – 東京", "emoji 🦆", "',0\n20260101 00:00:00,fake,line", "\\'", "",
)


def create_schema(database: str, *, reset: bool = False) -> None:
    """The workload's tables; with ``reset`` dropped first (inside the schema, so a replica
    that replays table DDL drops them too)."""
    from connectors.mysql.sql import quote_identifier

    conn = connect()
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)} "
                       "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        cursor.execute(f"USE {quote_identifier(database)}")
        if reset:
            cursor.execute("DROP TABLE IF EXISTS `accounts`, `counters`")
        for statement in SCHEMA:
            cursor.execute(statement)
        cursor.execute("INSERT IGNORE INTO `counters` (`name`, `n`) VALUES ('operations', 0)")
    conn.close()


def _worker(database: str, index: int, workers: int, operations: int, seed: int,
            errors: list, pause_s: float, first_id: int) -> None:
    """One connection: inserts, updates and deletes on the ids it owns (id % workers == index),
    in autocommit mode, in explicit transactions (some rolled back) and a few failing statements."""
    import pymysql

    rng = random.Random(seed * 1000 + index)
    try:
        conn = connect(database, autocommit=rng.random() < 0.5)  # pymysql sends SET AUTOCOMMIT
        live: list = []
        next_id = first_id + index
        with conn.cursor() as cursor:
            for op in range(operations):
                choice = rng.random()
                explicit = rng.random() < 0.15
                if explicit:
                    cursor.execute("START TRANSACTION")
                if choice < 0.4 or not live:
                    note = rng.choice(NASTY_NOTES)
                    cursor.execute("INSERT INTO `accounts` (`id`, `owner`, `balance`, `note`) VALUES (%s, %s, %s, %s)",
                                   (next_id, f"owner-{index}-{op}", rng.randrange(10 ** 6) / 100, note))
                    live.append(next_id)
                    added = next_id
                    next_id += workers
                elif choice < 0.8:
                    target = rng.choice(live)
                    cursor.execute("UPDATE `accounts` SET `balance` = `balance` + %s, `note` = %s WHERE `id` = %s",
                                   (rng.randrange(-5000, 5000) / 100, rng.choice(NASTY_NOTES), target))
                    added = None
                else:
                    target = live.pop(rng.randrange(len(live)))
                    cursor.execute("DELETE FROM `accounts` WHERE `id` = %s", (target,))
                    added = None
                # Every connection bumps the same row: contended, but order-independent.
                cursor.execute("UPDATE `counters` SET `n` = `n` + 1 WHERE `name` = 'operations'")
                if rng.random() < 0.05:
                    try:  # a statement that fails on the source (NOT NULL): never replayed
                        cursor.execute("INSERT INTO `accounts` (`id`, `owner`, `balance`) VALUES (NULL, 'x', 0)")
                    except pymysql.err.MySQLError:
                        pass
                if explicit and rng.random() < 0.3:
                    conn.rollback()
                    if added is not None:
                        live.remove(added)
                    # (an undone update or delete: the row stays as it was; re-read the truth)
                    cursor.execute("SELECT `id` FROM `accounts` WHERE `id` >= %s AND `id` %% %s = %s",
                                   (first_id, workers, (first_id + index) % workers))
                    live = [row[0] for row in cursor.fetchall()]
                elif explicit or not conn.get_autocommit():
                    conn.commit()
                if pause_s:
                    time.sleep(rng.random() * pause_s)
        conn.close()
    except Exception as exc:  # reported by workload()
        errors.append(f"worker {index}: {type(exc).__name__}: {exc}")


def workload(database: str, *, connections: int = 4, operations: int = 200, seed: int = 1,
             pause_s: float = 0.0, first_id: Optional[int] = None,
             progress: Optional[Callable[[str], None]] = None) -> int:
    """Run ``connections`` clients at once, ``operations`` each, on ids from ``first_id`` up
    (default: above any id there is; each client owns the ids ``first_id + i (mod connections)``);
    returns the operations' count."""
    if first_id is None:
        conn = connect(database)
        with conn.cursor() as cursor:
            cursor.execute("SELECT COALESCE(MAX(`id`), -1) + 1 FROM `accounts`")
            first_id = int(cursor.fetchone()[0])
        conn.close()
    errors: list = []
    threads = [threading.Thread(target=_worker, args=(database, i, connections, operations, seed, errors, pause_s,
                                                      first_id))
               for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("workload failed: " + "; ".join(errors))
    if progress:
        progress(f"workload: {connections} connections x {operations} operations on {database} "
                 f"in {time.monotonic() - started:.1f}s")
    return connections * operations


# --- comparing a source database with its replica --------------------------------

def table_contents(conn, database: str) -> dict:
    """table -> sorted rows, for every base table of ``database``."""
    from connectors.mysql.sql import quote_identifier

    contents = {}
    with conn.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                       "AND table_type = 'BASE TABLE' ORDER BY table_name", (database,))
        for (table,) in cursor.fetchall():
            cursor.execute(f"SELECT * FROM {quote_identifier(database)}.{quote_identifier(table)}")
            contents[table] = sorted(cursor.fetchall(), key=repr)
    return contents


def compare_databases(source_db: str, replica_conn, replica_db: str, out=print) -> bool:
    source = connect()
    try:
        want = table_contents(source, source_db)
    finally:
        source.close()
    have = table_contents(replica_conn, replica_db)
    same = True
    for table in sorted(set(want) | set(have)):
        a, b = want.get(table), have.get(table)
        if a == b:
            out(f"  {table}: {len(a)} rows, equal")
        else:
            same = False
            out(f"  {table}: source {'missing' if a is None else f'{len(a)} rows'}, "
                f"replica {'missing' if b is None else f'{len(b)} rows'}: DIFFERENT")
    return same

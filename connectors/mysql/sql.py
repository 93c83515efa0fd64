"""SQL text for the MySQL writer: identifiers, tables and guarded upserts. Pure, no server.

Every value is a bound parameter (``%s`` for pymysql); identifiers are validated and
quoted here and nowhere else. The statements run on MariaDB 10.11 (local) and on
MySQL 8 (Aurora MySQL 3); the one place they differ is ``Dialect``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from connectors.rows.limits import MAX_IDENTIFIER

HISTORY_SUFFIX = "_history"
TOMBSTONES_TABLE = "_ledgersync_tombstones"
DEAD_LETTERS_TABLE = "_ledgersync_dead_letters"
_SAFE = re.compile(r"[^A-Za-z0-9_]")


class BadIdentifier(ValueError):
    pass


def quote_identifier(name: str) -> str:
    """Backtick-quote a MySQL identifier after checking it is one we could have made."""
    if not name or len(name) > MAX_IDENTIFIER or _SAFE.search(name):
        raise BadIdentifier(f"not a safe MySQL identifier: {name!r}")
    return f"`{name}`"


def table_identifier(qldb_table: str) -> str:
    """A safe MySQL table name for a QLDB table name.

    Characters outside ``[A-Za-z0-9_]`` become ``_``; names that would not fit beside the
    ``_history`` suffix are cut and get a short hash so two long names stay apart.
    """
    if not qldb_table:
        raise BadIdentifier("empty QLDB table name")
    safe = _SAFE.sub("_", qldb_table)
    if safe.lower().startswith("_ledgersync_"):
        safe = "t" + safe  # bookkeeping tables own that prefix
    limit = MAX_IDENTIFIER - len(HISTORY_SUFFIX)
    if len(safe) > limit:
        digest = hashlib.sha1(qldb_table.encode("utf-8")).hexdigest()[:8]
        safe = f"{safe[:limit - 9]}_{digest}"
    return safe


@dataclass(frozen=True)
class Dialect:
    """What differs between MariaDB and MySQL 8 in the statements we send."""

    mariadb: bool
    version: tuple

    @classmethod
    def from_version_string(cls, text: str) -> "Dialect":
        numbers = tuple(int(p) for p in re.findall(r"\d+", text.split("-")[0])[:3])
        return cls(mariadb="mariadb" in text.lower(), version=numbers)

    @property
    def row_alias(self) -> bool:
        # MySQL 8.0.19+ deprecates VALUES(col) in ON DUPLICATE KEY UPDATE in favour of a
        # row alias; MariaDB has no row alias and keeps VALUES().
        return not self.mariadb and self.version >= (8, 0, 19)

    def incoming(self, column: str) -> str:
        quoted = quote_identifier(column)
        return f"new.{quoted}" if self.row_alias else f"VALUES({quoted})"


CURRENT_COLUMNS = ("document_id", "version", "tx_id", "tx_time", "document")
HISTORY_COLUMNS = CURRENT_COLUMNS + ("deleted", "redacted")
GAPS_TABLE = "_ledgersync_gaps"

_TABLE_OPTIONS = ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
_BASE_COLUMNS = (
    "`document_id` VARCHAR(128) NOT NULL,"
    "`version` BIGINT UNSIGNED NOT NULL,"
    "`tx_id` VARCHAR(128) NOT NULL,"
    "`tx_time` DATETIME(6) NULL,"
    "`document` JSON NULL,"
)


def history_table(table: str) -> str:
    return table + HISTORY_SUFFIX


# A keyed source's key column (connectors/formats/changes.py) by the JSON type of its
# value: strings get VARCHAR, not LONGTEXT, so the key columns can carry a unique index.
# 128 characters fit every key, since the key's JSON text must fit document_id's 128.
KEY_COLUMN_TYPES = {bool: "BOOLEAN", int: "BIGINT", str: "VARCHAR(128)"}
KEY_INDEX = "ledgersync_key"
# Keyed sources only: a delete made by the source's time-to-live (DynamoDB), in history.
EXPIRED_COLUMN = "expired"


def _key_columns(key_columns: tuple) -> str:
    return "".join(f"{quote_identifier(name)} {kind} NULL," for name, kind in key_columns)


def _key_index(key_columns: tuple, unique: bool) -> str:
    names = ", ".join(quote_identifier(n) for n, _ in key_columns)
    return f"{'UNIQUE ' if unique else ''}KEY `{KEY_INDEX}` ({names}), "


def create_current_table(table: str, key_columns: tuple = ()) -> str:
    """The current view; for a keyed source also its key columns, (name, type) pairs,
    with a unique index over them (document_id stays the primary key: one shape for
    every format, and it is the key's canonical text)."""
    return (f"CREATE TABLE IF NOT EXISTS {quote_identifier(table)} ("
            + _BASE_COLUMNS + _key_columns(key_columns)
            + (_key_index(key_columns, unique=True) if key_columns else "")
            + "PRIMARY KEY (`document_id`)" + _TABLE_OPTIONS)


def create_history_table(table: str, key_columns: tuple = ()) -> str:
    """Every revision once. A QLDB version is one transaction's, so (document_id, version)
    names a revision; a keyed source's version is a commit time, which two changes of a
    row may share (DynamoDB at millisecond precision), so its tie (tx_id) is in the key
    too, and its history records TTL deletes (``expired``)."""
    extra, primary = "", "PRIMARY KEY (`document_id`, `version`), "
    if key_columns:
        extra = f"`{EXPIRED_COLUMN}` BOOLEAN NOT NULL DEFAULT FALSE," + _key_columns(key_columns)
        primary = _key_index(key_columns, unique=False) + "PRIMARY KEY (`document_id`, `version`, `tx_id`), "
    return (f"CREATE TABLE IF NOT EXISTS {quote_identifier(history_table(table))} ("
            + _BASE_COLUMNS + "`deleted` BOOLEAN NOT NULL DEFAULT FALSE,"
            "`redacted` BOOLEAN NOT NULL DEFAULT FALSE," + extra
            + primary + "KEY `version` (`version`), KEY `tx_time` (`tx_time`)"
            + _TABLE_OPTIONS)


def add_column(table: str, column: str, column_type: str) -> str:
    # No IF NOT EXISTS (MySQL 8 lacks it): a writer that loses the race gets error 1060.
    return f"ALTER TABLE {quote_identifier(table)} ADD COLUMN {quote_identifier(column)} {column_type} NULL"


def modify_column(table: str, column: str, column_type: str) -> str:
    """Give a typed column a wider type (a DECIMAL with more digits): the same statement on
    MariaDB and MySQL 8; both rebuild the table for it (a DECIMAL's storage changes)."""
    return f"ALTER TABLE {quote_identifier(table)} MODIFY COLUMN {quote_identifier(column)} {column_type} NULL"


def table_columns() -> str:
    # DATA_TYPE names the kind; COLUMN_TYPE has the digits (decimal(20,2), datetime(6)).
    return ("SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION")


def column_type_of() -> str:
    return ("SELECT DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = %s")


def ddl_lock_name(database: str, table: str) -> str:
    """A named lock (GET_LOCK) per table for widening its columns, so two writers never
    read the same old type and the second narrow what the first widened. MySQL 8 refuses
    names over 64 characters (MariaDB has no limit): a hash keeps it short."""
    return "ledgersync.ddl." + hashlib.sha1(f"{database}.{table}".encode("utf-8")).hexdigest()[:40]


def _values(columns: int, rows: int) -> str:
    return ", ".join(["(" + ", ".join(["%s"] * columns) + ")"] * rows)


def newer(dialect: Dialect) -> str:
    """The incoming row is newer: a higher version, or the same version and a higher tie
    (tx_id). A QLDB version is one transaction's, so the tie never decides there; a keyed
    source's version is a commit time that two changes may share (connectors/formats/changes.py)."""
    return (f"({dialect.incoming('version')} > `version` OR "
            f"({dialect.incoming('version')} = `version` AND {dialect.incoming('tx_id')} > `tx_id`))")


def upsert_current(dialect: Dialect, table: str, rows: int, typed: tuple = ()) -> str:
    """Insert rows, or update a row only when the incoming one is newer (``newer``).

    MySQL applies the assignments left to right with already-updated values, so ``tx_id``
    and then ``version`` are assigned last: every other column compares against the old
    pair, and ``version``'s own test gives the same answer after ``tx_id`` moved.
    """
    if rows < 1:
        raise ValueError("rows must be at least 1")
    columns = CURRENT_COLUMNS + tuple(typed)
    names = ", ".join(quote_identifier(c) for c in columns)
    test = newer(dialect)
    updates = [
        f"{quote_identifier(c)} = IF({test}, {dialect.incoming(c)}, {quote_identifier(c)})"
        for c in columns if c not in ("document_id", "version", "tx_id")
    ]
    updates += [f"`{c}` = IF({test}, {dialect.incoming(c)}, `{c}`)" for c in ("tx_id", "version")]
    alias = " AS new" if dialect.row_alias else ""
    return (f"INSERT INTO {quote_identifier(table)} ({names}) VALUES {_values(len(columns), rows)}{alias} "
            f"ON DUPLICATE KEY UPDATE {', '.join(updates)}")


def insert_history(table: str, rows: int, typed: tuple = (), keyed: bool = False) -> str:
    """Insert revisions once: a repeat of a revision (the history table's key) changes nothing.
    ``keyed``: a keyed source's table, with its ``expired`` column."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    columns = HISTORY_COLUMNS + ((EXPIRED_COLUMN,) if keyed else ()) + tuple(typed)
    names = ", ".join(quote_identifier(c) for c in columns)
    # Not INSERT IGNORE: that would also turn real errors (bad values) into warnings.
    return (f"INSERT INTO {quote_identifier(history_table(table))} ({names}) "
            f"VALUES {_values(len(columns), rows)} ON DUPLICATE KEY UPDATE `document_id` = `document_id`")


def redact_history(table: str, rows: int, typed: tuple = ()) -> str:
    """Record redactions: insert the version redacted, or blank the data of the version
    already there, so the result is the same in either arrival order."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    columns = HISTORY_COLUMNS + tuple(typed)
    names = ", ".join(quote_identifier(c) for c in columns)
    blank = ", ".join(f"{quote_identifier(c)} = NULL" for c in ("document",) + tuple(typed))
    return (f"INSERT INTO {quote_identifier(history_table(table))} ({names}) "
            f"VALUES {_values(len(columns), rows)} ON DUPLICATE KEY UPDATE {blank}, `redacted` = TRUE")


def create_gaps_table() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(GAPS_TABLE)} ("
        "`table_name` VARCHAR(64) NOT NULL,"
        "`document_id` VARCHAR(128) NOT NULL,"
        "`from_version` BIGINT UNSIGNED NOT NULL,"
        "`to_version` BIGINT UNSIGNED NOT NULL,"
        "`action` VARCHAR(8) NOT NULL,"
        "`detected_at` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
        "PRIMARY KEY (`table_name`, `document_id`, `from_version`, `action`)"
        + _TABLE_OPTIONS
    )


def insert_gaps(rows: int) -> str:
    return (f"INSERT INTO {quote_identifier(GAPS_TABLE)} "
            "(`table_name`, `document_id`, `from_version`, `to_version`, `action`) "
            f"VALUES {_values(5, rows)} ON DUPLICATE KEY UPDATE `to_version` = `to_version`")


def select_current_versions(table: str, rows: int) -> str:
    marks = ", ".join(["%s"] * rows)
    return f"SELECT `document_id`, `version` FROM {quote_identifier(table)} WHERE `document_id` IN ({marks})"


def create_tombstones_table() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(TOMBSTONES_TABLE)} ("
        "`table_name` VARCHAR(64) NOT NULL,"
        "`document_id` VARCHAR(128) NOT NULL,"
        "`version` BIGINT UNSIGNED NOT NULL,"
        "`deleted_at` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
        "`tx_id` VARCHAR(128) NOT NULL DEFAULT '',"
        "PRIMARY KEY (`table_name`, `document_id`)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )


def tombstones_lack_tx_id() -> str:
    """Tombstone tables made before 0.2.0 have no tx_id (the tie of keyed sources)."""
    return ("SELECT COUNT(*) = 0 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            f"AND TABLE_NAME = '{TOMBSTONES_TABLE}' AND COLUMN_NAME = 'tx_id'")


def add_tombstones_tx_id() -> str:
    # '' sorts below every tie, so an old tombstone keeps exactly the meaning it had.
    return f"ALTER TABLE {quote_identifier(TOMBSTONES_TABLE)} ADD COLUMN `tx_id` VARCHAR(128) NOT NULL DEFAULT ''"


def record_tombstones(dialect: Dialect, rows: int) -> str:
    """Remember deletes; a tombstone only ever moves to a newer (version, tx_id)."""
    values = ", ".join(["(%s, %s, %s, %s)"] * rows)
    alias = " AS new" if dialect.row_alias else ""
    # tx_id first: its test reads the old version (see upsert_current).
    return (f"INSERT INTO {quote_identifier(TOMBSTONES_TABLE)} (`table_name`, `document_id`, `version`, `tx_id`) "
            f"VALUES {values}{alias} ON DUPLICATE KEY UPDATE "
            f"`tx_id` = IF({newer(dialect)}, {dialect.incoming('tx_id')}, `tx_id`), "
            f"`version` = GREATEST(`version`, {dialect.incoming('version')})")


def select_tombstones(rows: int, lock: bool = True, tie: bool = True) -> str:
    """(document_id, version[, tx_id]) of the tombstones among ``rows`` documents of one
    table. Order mode's lookup (QLDB only, where the tie never decides) reads no tx_id,
    so it works on a tombstone table the writer has not brought to 0.2.0 yet."""
    marks = ", ".join(["%s"] * rows)
    return (f"SELECT `document_id`, `version`{', `tx_id`' if tie else ''} FROM {quote_identifier(TOMBSTONES_TABLE)} "
            f"WHERE `table_name` = %s AND `document_id` IN ({marks})" + (" FOR UPDATE" if lock else ""))


def delete_current(table: str) -> str:
    """Remove a deleted document, but never a row newer than the delete (version, then tx_id)."""
    return (f"DELETE FROM {quote_identifier(table)} WHERE `document_id` = %s "
            "AND (`version` < %s OR (`version` = %s AND `tx_id` <= %s))")


DEAD_LETTER_COLUMNS = ("stream", "shard_id", "sequence_number", "sub_sequence", "stage", "reason", "raw")


def create_dead_letters_table() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(DEAD_LETTERS_TABLE)} ("
        "`id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,"
        "`stream` VARCHAR(128) NOT NULL,"
        "`shard_id` VARCHAR(128) NOT NULL,"
        "`sequence_number` VARCHAR(255) NOT NULL,"
        "`sub_sequence` INT NOT NULL,"
        "`stage` VARCHAR(16) NOT NULL,"
        "`reason` TEXT NOT NULL,"
        "`raw` LONGBLOB NOT NULL,"
        "`created_at` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
        "PRIMARY KEY (`id`),"
        "UNIQUE KEY `position` (`stream`, `shard_id`, `sequence_number`, `sub_sequence`, `stage`)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )


def insert_dead_letters(rows: int) -> str:
    """Insert dead letters; one already stored for the same position and stage is kept as is."""
    columns = ", ".join(quote_identifier(c) for c in DEAD_LETTER_COLUMNS)
    values = ", ".join(["(" + ", ".join(["%s"] * len(DEAD_LETTER_COLUMNS)) + ")"] * rows)
    # Not INSERT IGNORE: that would also hide real errors (truncation, bad values).
    return (f"INSERT INTO {quote_identifier(DEAD_LETTERS_TABLE)} ({columns}) VALUES {values} "
            "ON DUPLICATE KEY UPDATE `id` = `id`")

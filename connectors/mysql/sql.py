"""SQL text for the MySQL writer: identifiers, tables and guarded upserts. Pure, no server.

Every value is a bound parameter (``%s`` for pymysql); identifiers are validated and
quoted here and nowhere else. The statements run on MariaDB 10.11 (local) and on
MySQL 8 (Aurora MySQL 3); the one place they differ is ``Dialect``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_IDENTIFIER = 64
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


def create_current_table(table: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {quote_identifier(table)} ("
            + _BASE_COLUMNS + "PRIMARY KEY (`document_id`)" + _TABLE_OPTIONS)


def create_history_table(table: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {quote_identifier(history_table(table))} ("
            + _BASE_COLUMNS + "`deleted` BOOLEAN NOT NULL DEFAULT FALSE,"
            "`redacted` BOOLEAN NOT NULL DEFAULT FALSE,"
            "PRIMARY KEY (`document_id`, `version`), KEY `version` (`version`), KEY `tx_time` (`tx_time`)"
            + _TABLE_OPTIONS)


def add_column(table: str, column: str, column_type: str) -> str:
    # No IF NOT EXISTS (MySQL 8 lacks it): a writer that loses the race gets error 1060.
    return f"ALTER TABLE {quote_identifier(table)} ADD COLUMN {quote_identifier(column)} {column_type} NULL"


def table_columns() -> str:
    return ("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION")


def _values(columns: int, rows: int) -> str:
    return ", ".join(["(" + ", ".join(["%s"] * columns) + ")"] * rows)


def upsert_current(dialect: Dialect, table: str, rows: int, typed: tuple = ()) -> str:
    """Insert rows, or update a row only when the incoming version is newer.

    MySQL applies the assignments left to right with already-updated values, so
    ``version`` is assigned last: every other column compares against the old version.
    """
    if rows < 1:
        raise ValueError("rows must be at least 1")
    columns = CURRENT_COLUMNS + tuple(typed)
    names = ", ".join(quote_identifier(c) for c in columns)
    newer = f"{dialect.incoming('version')} > `version`"
    updates = [
        f"{quote_identifier(c)} = IF({newer}, {dialect.incoming(c)}, {quote_identifier(c)})"
        for c in columns if c not in ("document_id", "version")
    ]
    updates.append(f"`version` = IF({newer}, {dialect.incoming('version')}, `version`)")
    alias = " AS new" if dialect.row_alias else ""
    return (f"INSERT INTO {quote_identifier(table)} ({names}) VALUES {_values(len(columns), rows)}{alias} "
            f"ON DUPLICATE KEY UPDATE {', '.join(updates)}")


def insert_history(table: str, rows: int, typed: tuple = ()) -> str:
    """Insert revisions once: a repeat of (document_id, version) changes nothing."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    columns = HISTORY_COLUMNS + tuple(typed)
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
        "PRIMARY KEY (`table_name`, `document_id`)"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    )


def record_tombstones(dialect: Dialect, rows: int) -> str:
    """Remember deletes; a tombstone only ever moves to a higher version."""
    values = ", ".join(["(%s, %s, %s)"] * rows)
    alias = " AS new" if dialect.row_alias else ""
    incoming = dialect.incoming("version")
    return (f"INSERT INTO {quote_identifier(TOMBSTONES_TABLE)} (`table_name`, `document_id`, `version`) "
            f"VALUES {values}{alias} ON DUPLICATE KEY UPDATE `version` = GREATEST(`version`, {incoming})")


def select_tombstones(rows: int, lock: bool = True) -> str:
    marks = ", ".join(["%s"] * rows)
    return (f"SELECT `document_id`, `version` FROM {quote_identifier(TOMBSTONES_TABLE)} "
            f"WHERE `table_name` = %s AND `document_id` IN ({marks})" + (" FOR UPDATE" if lock else ""))


def delete_current(table: str) -> str:
    """Remove a deleted document, but never a row newer than the delete."""
    return f"DELETE FROM {quote_identifier(table)} WHERE `document_id` = %s AND `version` <= %s"


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

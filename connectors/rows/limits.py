"""The limits a row must keep to be written, in one place: every format checks its input
against them (a record beyond one is a dead letter, not a failed batch), and the MySQL
sink's tables are made to hold what passes. Pure."""
from __future__ import annotations

import re

# A document's JSON (UTF-8, as the writer sends it), at most. QLDB's own limit is 128 KB of Ion per document; 4 MiB
# leaves room for other producers and for JSON being wordier than binary Ion, while one
# row stays far below max_allowed_packet (16 MiB by default on MariaDB, 64 MiB on MySQL 8).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
# MariaDB's JSON type refuses more than 31 nested arrays/objects (measured on 10.11:
# JSON_VALID is 0 from 32 on); MySQL 8 allows 100. The stricter one decides.
MAX_JSON_DEPTH = 31
# document_id and tx_id are VARCHAR(128) columns (connectors/mysql/sql.py); a keyed
# source's key, as JSON text, is its document_id.
MAX_ID_CHARS = 128
# A MySQL identifier (a table or column name) is at most 64 characters.
MAX_IDENTIFIER = 64
# A plain identifier, to be used with fullmatch ("$" would let a trailing newline through):
# what a field must be to get a typed column of its own.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")

"""What a logged SQL statement is, as far as replaying it goes. Pure, no server.

Only the first keywords matter (after comments, which MySQL allows anywhere), so this
is a small tokenizer, not a parser: it skips comments, string literals and quoted
identifiers, and reads the leading words (``/*! ... */`` executable comments count as
code, as MySQL runs them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# Kinds of statement.
DML = "dml"  # INSERT, UPDATE, DELETE, REPLACE: replayed
DDL = "ddl"  # table DDL: replayed when opted in; commits an open transaction
IMPLICIT_COMMIT = "implicit-commit"  # other DDL, GRANT, LOCK TABLES...: not replayed, commits
BEGIN = "begin"
COMMIT = "commit"
ROLLBACK = "rollback"
SAVEPOINT = "savepoint"
ROLLBACK_TO = "rollback-to"
RELEASE = "release"
AUTOCOMMIT = "autocommit"  # SET autocommit = 0|1 (value in Statement.autocommit)
UNSUPPORTED = "unsupported"  # changes data but can't be replayed from its text (LOAD DATA)
OTHER = "other"  # reads and everything else: nothing to replay

DML_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# The table DDL a user may opt into (audit.replay.ddl).
DDL_VERBS = ("CREATE TABLE", "ALTER TABLE", "DROP TABLE", "TRUNCATE TABLE", "RENAME TABLE",
             "CREATE INDEX", "DROP INDEX")
_IMPLICIT_COMMIT_FIRST = {"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "GRANT", "REVOKE", "LOCK",
                          "ANALYZE", "OPTIMIZE", "REPAIR", "FLUSH", "INSTALL", "UNINSTALL"}

_WORD = re.compile(r"@@[A-Za-z0-9_.$]+|@[A-Za-z0-9_.$]+|[A-Za-z0-9_$]+")  # @@system, @user variables


@dataclass(frozen=True)
class Statement:
    kind: str
    verb: str  # e.g. "INSERT", "CREATE TABLE", "COMMIT"
    name: str = ""  # savepoint name
    autocommit: Optional[bool] = None


def _tokens(sql: str, limit: int = 400):
    """(word-or-symbol, paren depth) for the code in ``sql``, comments and literals skipped."""
    i, n, depth, count = 0, len(sql), 0, 0
    while i < n and count < limit:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("/*!", i) or sql.startswith("/*M!", i):
            i += 4 if sql[i + 2] == "M" else 3
            while i < n and sql[i].isdigit():
                i += 1  # the version number; the comment's body is code
        elif sql.startswith("*/", i):
            i += 2  # end of an executable comment
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == "#" or (sql.startswith("--", i) and (i + 2 >= n or sql[i + 2].isspace())):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif c in "'\"`":
            i += 1
            while i < n:
                if sql[i] == "\\" and c != "`":
                    i += 2
                elif sql[i] == c:
                    if i + 1 < n and sql[i + 1] == c:
                        i += 2  # doubled quote
                    else:
                        i += 1
                        break
                else:
                    i += 1
            yield ("`" if c == "`" else "'", depth)
            count += 1
        elif c == "(":
            yield ("(", depth)
            depth += 1
            i += 1
            count += 1
        elif c == ")":
            depth = max(0, depth - 1)
            yield (")", depth)
            i += 1
            count += 1
        else:
            match = _WORD.match(sql, i)
            if match:
                yield (match.group(0).upper(), depth)
                i = match.end()
            else:
                yield (c, depth)
                i += 1
            count += 1


def _autocommit_value(words: list) -> Optional[bool]:
    """The session autocommit a SET statement's words assign, if any."""
    for index, word in enumerate(words):
        name = word
        scope_global = index > 0 and words[index - 1] in ("GLOBAL", "PERSIST")
        if name.startswith("@@"):
            name = name[2:]
            scope_global = name.startswith("GLOBAL.")
            name = name.split(".")[-1]
        if name != "AUTOCOMMIT" or scope_global:
            continue
        rest = words[index + 1:index + 4]
        if rest[:1] == ["="]:
            value = rest[1] if len(rest) > 1 else ""
        elif rest[:2] == [":", "="]:
            value = rest[2] if len(rest) > 2 else ""
        else:
            continue
        if value in ("1", "ON", "TRUE"):
            return True
        if value in ("0", "OFF", "FALSE"):
            return False
    return None


def classify(sql: str) -> Statement:
    tokens = list(_tokens(sql))
    top = [t for t, depth in tokens if depth == 0]
    if not top:
        return Statement(OTHER, "")
    first = top[0]
    second = top[1] if len(top) > 1 else ""
    if first in DML_VERBS:
        return Statement(DML, first)
    if first == "WITH":
        # WITH cte AS (...) UPDATE|DELETE|SELECT|INSERT: the verb after the CTEs.
        for word in top[1:]:
            if word in DML_VERBS:
                return Statement(DML, word)
            if word == "SELECT":
                break
        return Statement(OTHER, "WITH")
    if first == "BEGIN" and second != "NOT" or (first == "START" and second == "TRANSACTION"):
        return Statement(BEGIN, "BEGIN")
    if first == "COMMIT":
        return Statement(COMMIT, "COMMIT")
    if first == "ROLLBACK":
        words = [w for w in top[1:] if w != "WORK"]
        if words[:1] == ["TO"]:
            name = words[2] if words[1:2] == ["SAVEPOINT"] and len(words) > 2 else (words[1] if len(words) > 1 else "")
            return Statement(ROLLBACK_TO, "ROLLBACK TO SAVEPOINT", name=name)
        return Statement(ROLLBACK, "ROLLBACK")
    if first == "SAVEPOINT":
        return Statement(SAVEPOINT, "SAVEPOINT", name=second)
    if first == "RELEASE" and second == "SAVEPOINT":
        return Statement(RELEASE, "RELEASE SAVEPOINT", name=top[2] if len(top) > 2 else "")
    if first == "SET":
        value = _autocommit_value(top[1:])
        if value is not None:
            return Statement(AUTOCOMMIT, "SET AUTOCOMMIT", autocommit=value)
        return Statement(OTHER, "SET")
    if first == "LOAD" and second in ("DATA", "XML"):
        return Statement(UNSUPPORTED, f"LOAD {second}")
    if first in _IMPLICIT_COMMIT_FIRST:
        return _ddl(first, top[1:])
    return Statement(OTHER, first)


def _ddl(first: str, words: list) -> Statement:
    modifiers = {"OR", "REPLACE", "ONLINE", "OFFLINE", "IGNORE", "UNIQUE", "FULLTEXT", "SPATIAL"}
    rest = [w for w in words if w not in modifiers]
    obj = rest[0] if rest else ""
    if obj == "TEMPORARY":
        # Session-local, no implicit commit, and nothing the replica can share.
        return Statement(OTHER, f"{first} TEMPORARY TABLE")
    if first == "TRUNCATE":
        return Statement(DDL, "TRUNCATE TABLE")
    verb = f"{first} {obj}".strip() if first in ("CREATE", "ALTER", "DROP", "RENAME", "LOCK") else first
    if verb in DDL_VERBS:
        return Statement(DDL, verb)
    if first == "LOCK" and obj not in ("TABLE", "TABLES"):
        return Statement(OTHER, verb)
    return Statement(IMPLICIT_COMMIT, verb)


def parse_ddl_setting(text: str) -> frozenset:
    """``audit.replay.ddl``: ``none`` (default), ``all``, or a comma-separated list of DDL_VERBS."""
    cleaned = [" ".join(part.split()).upper() for part in text.split(",") if part.strip()]
    if cleaned in ([], ["NONE"]):
        return frozenset()
    if cleaned == ["ALL"]:
        return frozenset(DDL_VERBS)
    unknown = [c for c in cleaned if c not in DDL_VERBS]
    if unknown:
        raise ValueError(f"unknown DDL {', '.join(unknown)}; expected none, all or some of {', '.join(DDL_VERBS)}")
    return frozenset(cleaned)

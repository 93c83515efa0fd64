"""The column-type tags a format reports beside a row's JSON, and how the row carries them.

A JSON string alone does not say whether it was a string, a decimal or a timestamp in the
source, so each decoder reports, per top-level field, the source type of the values whose
JSON form is text standing for something else: a *tag*. The row carries them
(``RowImage.types``, connectors/rows/row_images.py) and the MySQL sink makes typed columns
from them (connectors/mysql/column_types.py). Pure: no server.
"""
from __future__ import annotations

import functools
import json
from typing import Optional

DECIMAL_TAG = "decimal"  # exact decimal text: Ion decimal or int beyond 64 bits, DynamoDB N, DSQL numeric
TIMESTAMP_TAG = "timestamp"  # timestamp text: Ion timestamp (offset kept), DSQL timestamp/timestamptz
BLOB_TAG = "blob"  # base64 text of bytes: Ion blob/clob, DynamoDB B
TAGS = (DECIMAL_TAG, TIMESTAMP_TAG, BLOB_TAG)


def tags_json(tags: dict) -> Optional[str]:
    """The tags as the row carries them: compact JSON, None when there are none (most rows)."""
    return json.dumps(tags, ensure_ascii=False, separators=(",", ":"), sort_keys=True) if tags else None


@functools.lru_cache(maxsize=1024)
def parse_tags(text: Optional[str]) -> dict:
    """A row's tags (cached: the rows of one table mostly carry the same few texts)."""
    return json.loads(text) if text else {}

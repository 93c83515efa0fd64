"""`ledgersync show`: what the replicated tables hold (row counts and a few rows)."""
from __future__ import annotations

from connectors.mysql.client import MySqlSettings, connect
from connectors.mysql.sql import quote_identifier
from job.cli.args import DEFAULT_PROPERTIES
from job.cli.errors import using
from job.config.properties import load_properties
from job.config.settings import mysql_settings


def add_parser(commands) -> None:
    show = commands.add_parser("show", help="row counts and a few rows of the replicated tables")
    show.add_argument("--properties", default=DEFAULT_PROPERTIES, help="(default: %(default)s)")
    show.add_argument("--rows", type=int, default=3, help="sample rows per table (default 3)")
    show.set_defaults(handler=show_command)


def show_command(args) -> int:
    settings = mysql_settings(load_properties(args.properties))
    with using(f"MySQL {settings.describe()} (from {args.properties})"):
        show_tables(settings, sample=args.rows)
    return 0


def show_tables(settings: MySqlSettings, sample: int = 3, out=print) -> dict:
    conn = connect(settings)
    counts = {}
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                           "ORDER BY table_name", (settings.database,))
            tables = [row[0] for row in cursor.fetchall()]
            out(f"database {settings.describe()}: {len(tables)} tables")
            for table in tables:
                cursor.execute(f"SELECT COUNT(*) FROM {quote_identifier(table)}")
                counts[table] = cursor.fetchone()[0]
                out(f"  {table}: {counts[table]} rows")
                if table.startswith("_ledgersync_") or not sample:
                    continue
                cursor.execute(f"SELECT document_id, version, tx_time, LEFT(document, 100) "
                               f"FROM {quote_identifier(table)} ORDER BY document_id LIMIT %s", (sample,))
                for doc, version, tx_time, document in cursor.fetchall():
                    out(f"    {doc} v{version} {tx_time} {document}")
    finally:
        conn.close()
    return counts

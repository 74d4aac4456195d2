"""``levered warehouse …``: connection, status, tables, columns, preview, query (read-only)."""

from __future__ import annotations

import argparse

from levered_core.errors import UsageError
from levered_core.plugin_api import Cell, Lister, Result, ShowOne, bounded_int, progress, result_set, text_flag


def _truncation(body: dict[str, object]) -> str | None:
    """The footer of a result set cut at its row limit."""
    if body.get("truncated"):
        return f"(showing the first {body.get('row_count')} rows; more exist: raise -n)"
    return None


def _yes_no(value: object) -> str:
    return "yes" if value else "no"


class ShowStatus(ShowOne):
    """Show the warehouse connection and whether it answers"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.warehouse.status()
        if "provider" in body and not body["provider"]:
            return Result.text("Not connected", body)
        connected, latency = body.get("connected"), body.get("latency_ms")
        state = "-" if connected is None else f"connected ({'-' if latency is None else latency} ms)" if connected \
            else f"not connected: {body.get('warehouse_message') or '-'}"
        managed = " (managed)" if body.get("managed") else ""
        text = (f"Provider   {body.get('provider') or '-'}{managed}\n{_driver_line(body)}"
                f"Dataset    {body.get('dataset_id') or '-'}\n"
                f"Exposures  {body.get('exposures_table') or '-'}\nStatus     {state}")
        return Result.text(text, body)


class ShowConnection(ShowOne):
    """Show the warehouse connection (never its credentials)"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.warehouse.connection()
        conn = body.get("connection") if isinstance(body, dict) else None
        if not isinstance(conn, dict):
            return Result.text("No warehouse connection", body)
        managed = " (managed)" if conn.get("managed") else ""
        project = f"Project    {conn['project_id']}\n" if conn.get("project_id") else ""
        text = (f"Provider   {conn.get('provider') or '-'}{managed}\n{_driver_line(conn)}{project}"
                f"Dataset    {conn.get('dataset_id') or '-'}\n"
                f"Exposures  {conn.get('exposures_table') or '-'}\n"
                f"Updated    {conn.get('updated_at') or conn.get('created_at') or '-'}")
        return Result.text(text, body)


def _driver_line(body: dict[str, object]) -> str:
    """``Driver  name version`` when the server says (our server's extension; the hosted API
    does not send it, and the line is left out)."""
    driver, version = body.get("driver"), body.get("driver_version")
    if not driver:
        return ""
    return f"Driver     {driver}{f' {version}' if version else ''}\n"


class ListTables(Lister):
    """List the tables and views of the warehouse dataset"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.warehouse.tables()
        rows = [(Cell(t.get("name")), Cell(t.get("type")), Cell(t.get("row_count"))) for t in body.get("tables") or []]
        return Result(("Name", "Type", "Rows"), rows, body)


class ListColumns(Lister):
    """List a table's columns and their types"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("table", help="table or view name (or schema.table)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.warehouse.columns(parsed_args.table)
        rows = [(Cell(c.get("name")), Cell(c.get("type")), Cell(c.get("nullable"), _yes_no))
                for c in body.get("columns") or []]
        return Result(("Name", "Type", "Nullable"), rows, body)


class PreviewTable(Lister):
    """Show the first rows of a table (or of a query with --sql)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("table", nargs="?", help="table or view name")
        parser.add_argument("--sql", help="preview a read-only query instead of a table")
        parser.add_argument("-n", "--limit", type=bounded_int(1, 1000), default=10, help="rows (default 10)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        if (parsed_args.table is None) == (parsed_args.sql is None):
            raise UsageError("give either a table name or --sql, not both")
        with progress("Querying the warehouse"):
            if parsed_args.sql is not None:
                body = self.client.warehouse.query(text_flag("--sql", parsed_args.sql), parsed_args.limit)
            else:
                body = self.client.warehouse.preview(parsed_args.table, parsed_args.limit)
        return Result(*result_set(body), body, footer=_truncation(body))


class RunQuery(Lister):
    """Run one read-only SQL query (- reads it from stdin)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("query", nargs="?", metavar="SQL", help="the query; - reads stdin; @file.sql reads a file")
        parser.add_argument("--sql", dest="sql_flag", metavar="SQL", help="the query (instead of the argument)")
        parser.add_argument("-n", "--limit", type=bounded_int(1, 10000), default=100, help="rows (default 100)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        if (parsed_args.query is None) == (parsed_args.sql_flag is None):
            raise UsageError("give the SQL once: as the argument, with --sql, or - for stdin")
        sql = text_flag("SQL", parsed_args.query if parsed_args.query is not None else parsed_args.sql_flag)
        with progress("Running the query"):
            body = self.client.warehouse.query(sql, parsed_args.limit)
        return Result(*result_set(body), body, footer=_truncation(body))

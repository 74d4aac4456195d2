"""``levered metrics …``: list, create, preview, delete, usage."""

from __future__ import annotations

import argparse
from typing import Any

from levered_core.errors import APIError, NotFound
from levered_core.plugin_api import (
    Cell,
    Command,
    Lister,
    Result,
    ago,
    bounded_int,
    confirm,
    progress,
    result_set,
    short_id,
    text_flag,
)


class ListMetrics(Lister):
    """List reward metrics, newest first"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.metrics.list()
        rows = []
        for m in body.get("metrics") or []:
            mapping = m.get("column_mapping") or {}
            rows.append((Cell(m.get("id"), short_id), Cell(m.get("name")), Cell(mapping.get("reward_type")),
                         Cell(mapping.get("anonymous_id")), Cell(mapping.get("timestamp")), Cell(mapping.get("value")),
                         Cell(m.get("created_at"), ago)))
        return Result(("ID", "Name", "Type", "Anonymous ID", "Timestamp", "Value", "Created"), rows, body)


class CreateMetric(Command):
    """Create a metric: SQL returning reward events"""

    check_command = "levered metrics list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--name", required=True, help="human-readable name")
        parser.add_argument("--sql", required=True, help="one SELECT; @start_date is bound by the server; @file.sql reads a file")
        parser.add_argument("--anonymous-id-col", required=True, metavar="COL", help="result column with the user's ID")
        parser.add_argument("--timestamp-col", required=True, metavar="COL", help="result column with the event time")
        parser.add_argument("--value-col", metavar="COL", help="result column with a numeric reward (numeric metrics)")
        parser.add_argument("--reward-type", choices=("bool", "numeric"), help="default: numeric with --value-col, else bool")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        a = parsed_args
        mapping = {"anonymous_id": a.anonymous_id_col, "timestamp": a.timestamp_col}
        mapping.update({k: v for k, v in (("value", a.value_col), ("reward_type", a.reward_type)) if v is not None})
        sql = text_flag("--sql", a.sql)
        with progress("Checking the SQL against the warehouse"):
            body = self.client.metrics.create({"name": a.name, "sql": sql, "column_mapping": mapping})
        reward_type = (body.get("column_mapping") or {}).get("reward_type") or "-"
        text = (f"Created metric {body.get('name') or '-'} ({body.get('id') or '-'}), {reward_type} reward\n"
                f"Use it: levered optimizations create --reward-metric-id {body.get('id') or 'ID'} ...")
        return Result.text(text, body)


class PreviewMetric(Lister):
    """Run a metric's SQL and show a sample of its rows"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="metric ID or a unique prefix of it")
        parser.add_argument("--limit", "-n", type=bounded_int(1, 1000), default=10, help="rows (1-1000, default 10)")
        parser.add_argument("--start-date", metavar="DATE", help="value of @start_date (default: 7 days ago)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        metric_id = self.client.metrics.resolve(parsed_args.id)
        with progress("Running the metric SQL"):
            body = self.client.metrics.preview(metric_id, parsed_args.limit, parsed_args.start_date)
        return Result(*result_set(body), body)


def _named(client: Any, metric_id: str) -> str:
    """``'Sign-ups' (<id>)`` for the prompt, or the ID alone where the server does not say."""
    try:
        name = client.metrics.get(metric_id).get("name")
    except NotFound:  # GET /metrics/:id is not on every server; the delete itself says if the metric is gone
        name = None
    return f"'{name}' ({metric_id})" if name else metric_id


class DeleteMetric(Command):
    """Delete a metric (refused while a live optimization uses it)"""

    check_command = "levered metrics list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="metric ID or a unique prefix of it")
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        metric_id = self.client.metrics.resolve(parsed_args.id)
        if not parsed_args.yes:
            confirm(f"Delete metric {_named(self.client, metric_id)}?", False)
        try:
            body = self.client.metrics.delete(metric_id)
        except APIError as exc:
            users = exc.details.get("optimizations") or []
            if users:
                exc.message += " Used by: " + ", ".join(
                    f"{o.get('name', '-')} ({o.get('id', '-')}, {o.get('status', '-')})" for o in users)
            raise
        return Result.text(f"Deleted metric {metric_id}", body)


class MetricUsage(Lister):
    """Show where a metric is used: reward of, guardrail of"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="metric ID or a unique prefix of it")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        metric_id = self.client.metrics.resolve(parsed_args.id)
        body = self.client.metrics.usage(metric_id)
        rows = [(Cell("reward"), Cell(o.get("id"), short_id), Cell(o.get("name")), Cell(o.get("status")), Cell(None))
                for o in body.get("reward_of") or []]
        rows += [(Cell("guardrail"), Cell(o.get("id"), short_id), Cell(o.get("name")), Cell(o.get("status")),
                  Cell(o, _rule)) for o in body.get("guardrail_of") or []]
        footer = None if rows else f"{body.get('metric_name') or metric_id} is not used by any optimization"
        return Result(("Use", "Optimization", "Name", "Status", "Rule"), rows, body, footer=footer)


def _rule(guardrail: dict[str, Any]) -> str:
    tolerance = guardrail.get("tolerance")
    return f"{guardrail.get('direction') or '-'} is better, tolerance " + (
        "-" if tolerance is None else f"{tolerance * 100:g}%")

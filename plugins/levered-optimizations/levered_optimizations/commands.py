"""``levered optimizations …``: create, list, show, update, archive, results, observations.

Guardrails (create and update flags, the lines of show and results) are a server extension: a
server without them answers 404 to their endpoint, and show and results then just leave them out.
"""

from __future__ import annotations

import argparse
from typing import Any

from levered_core.errors import LeveredError, UsageError
from levered_core.plugin_api import (
    Cell,
    Command,
    Lister,
    Result,
    ShowOne,
    ago,
    bounded_int,
    confirm,
    factor_specs,
    flat_optimization,
    fraction,
    json_flag,
    number,
    optimization_text,
    percent,
    progress,
    results_text,
    short_id,
    variant_label,
)
from levered_optimizations import insights

STATUSES = ("live", "completed", "archived")
GUARDRAIL_HELP = ("a metric the optimization must not harm, as METRIC_ID[:higher|lower[:TOLERANCE]] "
                  "(default higher:0; 0.02 = may not lose more than 2 %%); repeat for several")


def _guardrail_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guardrail", action="append", default=[], metavar="METRIC_ID[:DIR[:TOL]]",
                        help=GUARDRAIL_HELP)
    parser.add_argument("--guardrail-metric-ids", metavar="ID[,ID...]",
                        help="guardrail metrics with the defaults (higher is better, tolerance 0)")


def _guardrails(client: Any, a: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The guardrails of --guardrail and --guardrail-metric-ids, metric IDs resolved; None without."""
    specs = [insights.parse_guardrail(raw) for raw in a.guardrail]
    if a.guardrail_metric_ids is not None:
        specs += [(m.strip(), "higher", 0.0) for m in a.guardrail_metric_ids.split(",") if m.strip()]
    if not specs and a.guardrail_metric_ids is None:
        return None
    return [{"metric_id": client.metrics.resolve(metric), "direction": direction, "tolerance": tolerance}
            for metric, direction, tolerance in specs]


def _guardrail_view(client: Any, optimization_id: str | None) -> dict[str, Any] | None:
    """The guardrails as configured (no warehouse query), or None where the server has none."""
    if not optimization_id:
        return None
    try:
        body = client.optimizations.guardrails(optimization_id, evaluate=False)
    except LeveredError:  # decoration only, and an extension endpoint
        return None
    return body if isinstance(body, dict) else None


def _with_guardrails(text: str, view: dict[str, Any] | None, always: bool = False) -> str:
    """``text`` and the guardrail lines, if there are any (``always``: also "none")."""
    if view is None or not (always or view.get("guardrails") or view.get("auto_stop") or view.get("stop_reason")):
        return text
    return text + "\n\n" + "\n".join(insights.guardrail_lines(view))


def _metric_name(client: Any, body: Any) -> str | None:
    """The reward metric's name for an optimization body, or None (then its ID is shown)."""
    metric_id = flat_optimization(body).get("reward_metric_id")
    if not metric_id:
        return None
    try:
        name = client.metrics.get(metric_id).get("name")
    except LeveredError:  # only decoration (and not an endpoint every server offers): show the ID instead
        return None
    return str(name) if name else None


def _row(o: dict[str, Any]) -> tuple[Cell, ...]:
    summary = o.get("summary") or {}
    return (Cell(o.get("id"), short_id), Cell(o.get("name")), Cell(o.get("status")), Cell(o.get("model_type")),
            Cell(o.get("model_status")), Cell(summary.get("lift"), lambda v: percent(v, signed=True)),
            Cell(summary.get("confidence"), lambda v: fraction(v, 0)), Cell(summary.get("exposures")),
            Cell(o.get("updated_at"), ago))


class ListOptimizations(Lister):
    """List optimizations, most recently updated first"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--limit", type=bounded_int(1, 100), default=10, help="at most N (1-100, default 10)")
        parser.add_argument("--include-archived", action="store_true", help="also list archived optimizations")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.optimizations.list(parsed_args.limit, parsed_args.include_archived)
        rows = [_row(o) for o in body.get("optimizations") or []]
        columns = ("ID", "Name", "Status", "Type", "Model", "Lift", "Confidence", "Exposures", "Updated")
        return Result(columns, rows, body)


class ShowOptimization(ShowOne):
    """Show an optimization: factors, model, metric and status"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="optimization ID or a unique prefix of it")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        optimization_id = self.client.optimizations.resolve(parsed_args.id)
        body = self.client.optimizations.get(optimization_id)
        text = optimization_text(body, _metric_name(self.client, body))
        return Result.text(_with_guardrails(text, _guardrail_view(self.client, optimization_id)), body)


class CreateOptimization(Command):
    """Create an optimization from design factors and a metric"""

    check_command = "levered optimizations list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--name", required=True, help="human-readable name")
        parser.add_argument("--design-factors", required=True, metavar="JSON",
                            help='JSON array (or @file.json): [{"name": "headline", "levels": ["A", "B"]}, ...]')
        parser.add_argument("--reward-metric-id", required=True, metavar="UUID", help="the metric that defines success (or a unique prefix of its ID)")
        parser.add_argument("--model-type", choices=("cmab", "mab"), help="default cmab (contextual)")
        parser.add_argument("--context-factors", metavar="JSON", help='JSON array: [{"name": "country"}, ...]')
        parser.add_argument("--excluded-combinations", metavar="JSON", help='JSON array of partial variants never served')
        parser.add_argument("--holdout-percentage", type=bounded_int(0, 50), help="0-50, default 10")
        parser.add_argument("--conversion-window-hours", type=bounded_int(1, 2160), help="1-2160, default 24")
        parser.add_argument("--reward-name", help="label of the reward (default: reward)")
        parser.add_argument("--reward-type", choices=("bool", "numeric"), help="default: the metric's type")
        _guardrail_flags(parser)
        parser.add_argument("--auto-stop", action="store_true",
                            help="stop the optimization when a guardrail is violated (server extension)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        a = parsed_args
        config: dict[str, Any] = {"design_factors": factor_specs(
            "--design-factors", json_flag("--design-factors", a.design_factors, list), levels_required=True)}
        if a.context_factors is not None:
            config["context_factors"] = factor_specs(
                "--context-factors", json_flag("--context-factors", a.context_factors, list), levels_required=False)
        reward = {k: v for k, v in (("name", a.reward_name), ("type", a.reward_type)) if v is not None}
        if reward:
            config["reward"] = reward
        if a.conversion_window_hours is not None:
            config["attribution"] = {"type": "last_touch", "conversion_window_hours": a.conversion_window_hours}
        metric_id = self.client.metrics.resolve(a.reward_metric_id)
        body: dict[str, Any] = {"name": a.name, "reward_metric_id": metric_id, "training_data_config": config}
        guardrails = _guardrails(self.client, a)
        if guardrails:  # extension fields: sent only when asked for, so the hosted API sees none
            body["guardrails"] = guardrails
        if a.auto_stop:
            body["auto_stop"] = True
        if a.excluded_combinations is not None:
            body["excluded_combinations"] = json_flag("--excluded-combinations", a.excluded_combinations, list)
        for key, value in (("model_type", a.model_type), ("holdout_percentage", a.holdout_percentage)):
            if value is not None:
                body[key] = value
        created = self.client.optimizations.create(body)
        view = _guardrail_view(self.client, flat_optimization(created).get("id")) if guardrails or a.auto_stop else None
        text = (_with_guardrails(optimization_text(created, _metric_name(self.client, created)), view)
                + f"\n\nServe it: levered serve {short_id(flat_optimization(created).get('id')) or 'ID'}")
        return Result.text(text, created)


class UpdateOptimization(Command):
    """Change status, name, guardrails or auto-stop"""

    check_command = "levered optimizations show {id}"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="optimization ID or a unique prefix of it")
        parser.add_argument("--status", choices=STATUSES, help="the new status")
        parser.add_argument("--name", help="a new name")
        _guardrail_flags(parser)
        parser.add_argument("--clear-guardrails", action="store_true", help="remove every guardrail")
        stop = parser.add_mutually_exclusive_group()
        stop.add_argument("--auto-stop", action="store_true", default=None,
                          help="stop the optimization when a guardrail is violated")
        stop.add_argument("--no-auto-stop", action="store_false", dest="auto_stop", help="only report violations")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        a = parsed_args
        body: dict[str, Any] = {k: v for k, v in (("status", a.status), ("name", a.name), ("auto_stop", a.auto_stop))
                                if v is not None}
        if a.clear_guardrails and (a.guardrail or a.guardrail_metric_ids is not None):
            raise UsageError("--clear-guardrails removes them all: do not also give --guardrail")
        if not body and not (a.guardrail or a.guardrail_metric_ids is not None or a.clear_guardrails):
            raise UsageError(f"nothing to update: give --status ({' | '.join(STATUSES)}), --name, --guardrail, "
                             "--clear-guardrails or --auto-stop/--no-auto-stop")
        optimization_id = self.client.optimizations.resolve(a.id)
        guardrails = [] if a.clear_guardrails else _guardrails(self.client, a)
        if guardrails is not None:
            body["guardrails"] = guardrails
        updated = self.client.optimizations.update(optimization_id, body)
        flat = flat_optimization(updated)
        text = f"{flat.get('name') or '-'} ({flat.get('id') or optimization_id}) is {flat.get('status') or '-'}"
        if guardrails is not None or a.auto_stop is not None:
            text = _with_guardrails(text, _guardrail_view(self.client, optimization_id), always=True)
        return Result.text(text, updated)


class ArchiveOptimization(Command):
    """Archive an optimization (it stops serving)"""

    check_command = "levered optimizations show {id}"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="optimization ID or a unique prefix of it")
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        optimization_id = self.client.optimizations.resolve(parsed_args.id)
        if not parsed_args.yes:
            name = flat_optimization(self.client.optimizations.get(optimization_id)).get("name") or "-"
            confirm(f"Archive optimization '{name}' ({optimization_id})?", False)
        updated = self.client.optimizations.update(optimization_id, {"status": "archived"})
        flat = flat_optimization(updated)
        return Result.text(f"Archived {flat.get('name') or '-'} ({flat.get('id') or optimization_id})", updated)


class ShowResults(Command):
    """Show lift, intervals, P(best) and factor importance"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="optimization ID or a unique prefix of it")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        optimization_id = self.client.optimizations.resolve(parsed_args.id)
        with progress("Computing results in the warehouse"):
            body = self.client.optimizations.results(optimization_id)
        text = results_text(body)
        view = _guardrail_view(self.client, optimization_id)
        stopped = insights.stop_line(view) if view else None
        return Result.text(f"{stopped}\n\n{text}" if stopped else text, body)


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


def _page_footer(body: dict[str, Any], page: int, size: int) -> str | None:
    """``page 2 of 5 (93 observations); next: --page 3``, or None without a total."""
    total, size, page = body.get("total"), body.get("size") or size, body.get("page") or page
    if not total:
        return None
    pages = -(-total // size)
    more = f"; next: --page {page + 1}" if page < pages else ""
    return f"page {page} of {pages} ({total} observations){more}"


class ListObservations(Lister):
    """List exposures with their attributed rewards, newest first"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="optimization ID or a unique prefix of it")
        parser.add_argument("--page", type=bounded_int(1, 10**9), default=1, help="page number (default 1)")
        parser.add_argument("--size", type=bounded_int(1, 100), default=20, help="rows per page (1-100, default 20)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        optimization_id = self.client.optimizations.resolve(parsed_args.id)
        body = self.client.optimizations.observations(optimization_id, parsed_args.page, parsed_args.size)
        rows = [(Cell(o.get("exposed_at"), ago), Cell(o.get("anonymous_id")), Cell(o.get("variant_number"), "#{}".format),
                 Cell(o.get("in_holdout"), _yes_no), Cell(o.get("propensity"), lambda v: number(v, 3)),
                 Cell(o.get("reward"), none="pending" if "reward" in o else "-"),
                 Cell(o.get("context"), variant_label)) for o in body.get("observations") or []]
        columns = ("Exposed", "Anonymous ID", "Variant", "Holdout", "Propensity", "Reward", "Context")
        return Result(columns, rows, body, footer=_page_footer(body, parsed_args.page, parsed_args.size))

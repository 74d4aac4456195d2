"""``levered optimizations progress|lift-history|guardrails|report-data`` (server extensions)."""

from __future__ import annotations

import argparse
import pathlib

from levered_core.errors import UsageError
from levered_core.plugin_api import Command, Result, progress
from levered_optimizations import insights


class _OneOptimization(Command):
    """A command about one optimization, named by ID or prefix"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("id", help="optimization ID or a unique prefix of it")
        return parser


class ShowProgress(_OneOptimization):
    """Show days live, exposures per variant and progress"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        optimization_id = self.client.optimizations.resolve(parsed_args.id)
        with progress("Counting exposures in the warehouse"):
            body = self.client.optimizations.progress(optimization_id)
        return Result.text(insights.progress_text(body), body)


class ShowLiftHistory(_OneOptimization):
    """Show the model's daily lift estimates"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        optimization_id = self.client.optimizations.resolve(parsed_args.id)
        body = self.client.optimizations.lift_history(optimization_id)
        return Result.text(insights.lift_history_text(body), body)


class ShowGuardrails(_OneOptimization):
    """Check guardrail metrics against the holdout"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        optimization_id = self.client.optimizations.resolve(parsed_args.id)
        with progress("Checking guardrails in the warehouse"):
            body = self.client.optimizations.guardrails(optimization_id)
        return Result.text(insights.guardrails_text(body), body)


class ReportData(_OneOptimization):
    """Export an optimization's data for analysis (JSON or CSV)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--format", choices=("json", "csv"), default="json", dest="pack_format",
                            help="json (default): the whole pack on stdout; csv: one tidy table per file")
        parser.add_argument("--out", metavar="DIR", help="directory for the CSV files (with --format csv)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        if parsed_args.pack_format == "csv" and not parsed_args.out:
            raise UsageError("--format csv writes files: give --out DIR")
        if parsed_args.out and parsed_args.pack_format != "csv":
            raise UsageError("--out is for --format csv")
        optimization_id = self.client.optimizations.resolve(parsed_args.id)
        with progress("Collecting report data"):
            body = self.client.optimizations.report_data(optimization_id)
        if parsed_args.pack_format == "json":
            return Result.text(_dumps(body), body)
        written = insights.write_csv(body, pathlib.Path(parsed_args.out))
        files = [str(p) for p in written]
        return Result.text("Wrote " + ", ".join(files), {"files": files})


def _dumps(body: object) -> str:
    import json

    return json.dumps(body, indent=2, ensure_ascii=False)

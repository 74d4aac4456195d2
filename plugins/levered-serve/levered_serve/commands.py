"""``levered serve``: ask for a variant for a user, outside the SDK."""

from __future__ import annotations

import argparse
from typing import Any

from levered_core.plugin_api import Command, Result, json_flag, number, variant_label


def _text(served: dict[str, Any], generated: bool, dry_run: bool) -> str:
    """The answer for people; only ``variant`` and ``anonymous_id`` are sure to be there (``-`` for the rest)."""
    variant_number, holdout, version = served.get("variant_number"), served.get("in_holdout"), served.get("model_version")
    exposure = served.get("exposure_id") or ("not recorded (dry run)" if dry_run else "-")
    return "\n".join([
        f"Variant     {'' if variant_number is None else f'#{variant_number}  '}{variant_label(served.get('variant') or {}) or '-'}",
        f"User        {served.get('anonymous_id') or '-'}{' (generated)' if generated else ''}",
        f"Holdout     {'-' if holdout is None else 'yes (baseline)' if holdout else 'no'}",
        f"Propensity  {number(served.get('propensity'), 4)}  (model version {'-' if version is None else version})",
        f"Exposure    {exposure}",
    ])


class ServeVariant(Command):
    """Request a variant assignment for a user"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("optimization_id", help="optimization ID or a unique prefix of it")
        parser.add_argument("--anonymous-id", metavar="ID", help="the user's anonymous ID (default: a new random one)")
        parser.add_argument("--context", metavar="JSON", help='context values, e.g. {"country": "US", "device_type": "mobile"}')
        parser.add_argument("--dry-run", action="store_true", help="decide without recording a lock or an exposure")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body: dict[str, Any] = {}
        if parsed_args.context is not None:
            body["context"] = json_flag("--context", parsed_args.context, dict)
        if parsed_args.anonymous_id is not None:
            body["anonymous_id"] = parsed_args.anonymous_id
        if parsed_args.dry_run:
            body["dry_run"] = True
        served = self.client.optimizations.serve(self.client.optimizations.resolve(parsed_args.optimization_id), body)
        return Result.text(_text(served, generated=not parsed_args.anonymous_id, dry_run=parsed_args.dry_run), served)

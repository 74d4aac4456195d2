"""A command hook that requires ``--cost-center`` on ``levered optimizations create``.

It adds the option, refuses to run without it (nothing is sent), and after a successful
create appends ``{"optimization_id", "cost_center"}`` to ``$LEVERED_HOME/cost-centers.jsonl``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from levered_core.errors import UsageError
from levered_core.plugin_api import CommandHook, home


class CostCenterHook(CommandHook):
    """Require and record a cost center for every new optimization."""

    def get_parser(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--cost-center", metavar="CODE", help="ACME cost center paying for it (required)")
        return parser

    def get_epilog(self) -> str:
        return "ACME policy: --cost-center is required."

    def before(self, parsed_args: argparse.Namespace) -> argparse.Namespace:
        if not parsed_args.cost_center:
            raise UsageError("ACME policy: --cost-center CODE is required for optimizations create")
        return parsed_args

    def after(self, parsed_args: argparse.Namespace, return_code: Any) -> Any:
        created = getattr(self.cmd, "last_document", None)
        if created:
            home().mkdir(parents=True, exist_ok=True)
            with (home() / "cost-centers.jsonl").open("a", encoding="utf-8") as log:
                log.write(json.dumps({"optimization_id": created["id"], "cost_center": parsed_args.cost_center}) + "\n")
        return return_code

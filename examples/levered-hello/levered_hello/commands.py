"""``levered hello whoami`` and ``levered hello optimizations``."""

from __future__ import annotations

import argparse

from levered_core.plugin_api import Lister, Result, ShowOne


class ShowCaller(ShowOne):
    """Show who the API thinks you are"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        me = self.client.identity.me()
        user = me.get("user") or {}
        values = (user.get("email", "(API key)"), me["organization"]["name"], self.client.api_url)
        return Result(("Email", "Organization", "API"), values, me)


class ListOptimizationNames(Lister):
    """List optimization names and statuses"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--limit", type=int, default=10, help="at most N (default 10)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.optimizations.list(limit=parsed_args.limit)
        rows = [(o["name"], o["status"]) for o in body["optimizations"]]
        return Result(("Name", "Status"), rows, body)

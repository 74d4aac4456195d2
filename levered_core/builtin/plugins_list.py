"""``levered plugins list``."""

from __future__ import annotations

import argparse
from typing import Any

from levered_core import manifest, plugin_api
from levered_core.command import Lister
from levered_core.output import Result


def _row(name: str, record: dict[str, Any], commands: object) -> tuple[object, ...]:
    status = record["status"] if not record["error"] else f"{record['status']}: {record['error']}"
    location = record["location"] + (" (editable)" if record["editable"] else "") if record["location"] else ""
    return (name, record["distribution"], record["version"], status, commands, location)


class ListPlugins(Lister):
    """List installed command groups and hooks, origin and status"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        data = manifest.load(rebuild=True)
        plugins, hooks = data["plugins"], data.get("hooks", [])
        columns = ("Group", "Distribution", "Version", "Status", "Commands", "Location")
        # A hook's row: "hook <name>" in Group, the command it extends in Commands.
        rows = [_row(p["group"], p, len(p["commands"])) for p in plugins]
        rows += [_row(f"hook {h['name']}", h, h["command"]) for h in hooks]
        document = {"core_version": data["core_version"], "plugin_api_version": plugin_api.PLUGIN_API_VERSION,
                    "plugins": plugins, "hooks": hooks}
        return Result(columns, rows, document)

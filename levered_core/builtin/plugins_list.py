"""``levered plugins list``."""

from __future__ import annotations

import argparse

from levered_core import manifest, plugin_api
from levered_core.command import Lister
from levered_core.output import Result


class ListPlugins(Lister):
    """List installed command groups, their origin and load status"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        data = manifest.load(rebuild=True)
        plugins = data["plugins"]
        columns = ("Group", "Distribution", "Version", "Status", "Commands", "Location")
        rows = [
            (p["group"], p["distribution"], p["version"],
             p["status"] if not p["error"] else f"{p['status']}: {p['error']}",
             len(p["commands"]), p["location"] + (" (editable)" if p["editable"] else "") if p["location"] else "")
            for p in plugins
        ]
        rows += [("(hook)", h["distribution"], "", f"on '{h['command']}'", h["name"], h["target"])
                 for h in data.get("hooks", [])]
        document = {"core_version": data["core_version"], "plugin_api_version": plugin_api.PLUGIN_API_VERSION,
                    "plugins": plugins, "hooks": data.get("hooks", [])}
        return Result(columns, rows, document)

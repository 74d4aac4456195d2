"""The ``levered dashboard`` command: a live, read-only terminal view of optimizations.

Kept import-cheap: it is loaded to list groups. Textual is imported only when the dashboard
runs (``levered_dashboard.app``).
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("dashboard", "Watch optimizations learn in a live terminal view", api_version=1, builtin=True)

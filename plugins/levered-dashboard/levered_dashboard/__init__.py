"""The ``levered dashboard`` command group.

Its commands arrive with their issues; until then the group is installed and lists none.
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("dashboard", "Watch optimizations learn in a live terminal view", api_version=1)

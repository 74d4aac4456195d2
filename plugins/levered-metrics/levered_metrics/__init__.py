"""The ``levered metrics`` command group.

Its commands arrive with their issues; until then the group is installed and lists none.
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("metrics", "Define the reward metrics that say what success is", api_version=1, builtin=True)

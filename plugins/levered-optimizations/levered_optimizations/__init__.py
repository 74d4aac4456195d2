"""The ``levered optimizations`` command group.

Its commands arrive with their issues; until then the group is installed and lists none.
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("optimizations", "Create, manage and inspect optimizations", api_version=1, builtin=True)

"""The ``levered models`` command group.

Its commands arrive with their issues; until then the group is installed and lists none.
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("models", "Inspect and manage the bandit models behind optimizations", api_version=1, builtin=True)

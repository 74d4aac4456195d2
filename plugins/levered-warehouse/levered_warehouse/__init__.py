"""The ``levered warehouse`` command group.

Its commands arrive with their issues; until then the group is installed and lists none.
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("warehouse", "Inspect and query your data warehouse (read-only)", api_version=1, builtin=True)

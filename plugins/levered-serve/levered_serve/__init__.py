"""The ``levered serve`` command group.

Its commands arrive with their issues; until then the group is installed and lists none.
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("serve", "Request a variant assignment for a user", api_version=1, builtin=True)

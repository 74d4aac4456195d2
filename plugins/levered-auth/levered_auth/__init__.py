"""The ``levered auth`` command group.

Its commands arrive with their issues; until then the group is installed and lists none.
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("auth", "Log in and out, show who you are, manage API keys", api_version=1, builtin=True)

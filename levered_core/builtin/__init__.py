"""Commands the core ships itself, registered through entry points like any plugin's."""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("plugins", "List, install and uninstall plugins and command hooks", api_version=1, builtin=True)

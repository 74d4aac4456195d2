"""Commands the core ships itself, registered through entry points like any plugin's."""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("plugins", "List the installed command plugins and whether they loaded", api_version=1)

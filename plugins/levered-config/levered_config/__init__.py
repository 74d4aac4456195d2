"""The ``levered config`` command group."""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("config", "Read and write CLI settings in ~/.levered/config.json", api_version=1, builtin=True)

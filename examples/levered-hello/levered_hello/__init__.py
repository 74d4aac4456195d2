"""The ``levered hello`` command group: a template for plugin authors.

Keep this module import-cheap: levered imports it to list command groups.
"""

from levered_core.plugin_api import CommandGroup

GROUP = CommandGroup("hello", "Say hello to the Levered API (the template plugin)", api_version=1)

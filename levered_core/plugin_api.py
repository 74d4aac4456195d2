"""The public, versioned plugin contract of the ``levered`` CLI.

Everything a plugin may rely on is named here: the entry-point namespaces, the plugin API
version, the :class:`CommandGroup` declaration and the command base classes. The rest of
``levered_core`` is private and may change without notice. See ``docs/plugins.md``.

A plugin distribution declares one command group and its commands in ``setup.cfg``::

    [options.entry_points]
    levered.groups.v1 =
        hello = levered_hello:GROUP
    levered.commands.v1 =
        hello list = levered_hello.commands:ListGreetings

and ``levered_hello/__init__.py`` holds the (import-cheap) declaration::

    from levered_core.plugin_api import CommandGroup
    GROUP = CommandGroup("hello", "Say hello to the Levered API", api_version=1)

Command modules subclass :class:`Command`, :class:`Lister` or :class:`ShowOne` from here, and
organizations extend existing commands with cliff's :class:`CommandHook` registered under
:func:`hook_namespace`. These are cliff classes, imported on first use so that declaring a
group costs nothing.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cliff.hooks import CommandHook

    from levered_core.command import Command, Lister, ShowOne
    from levered_core.output import Cell, Result

#: The plugin API this core provides. A plugin declares the version it was built for.
PLUGIN_API_VERSION = 1
#: Plugin API versions this core can load.
SUPPORTED_API_VERSIONS = frozenset({1})

#: Entry points naming command groups: ``<group> = package:CommandGroup instance``.
GROUPS_NAMESPACE = "levered.groups.v1"
#: Entry points naming commands: ``<group> <verb> = module:CommandClass``.
COMMANDS_NAMESPACE = "levered.commands.v1"
#: Prefix of cliff command-hook namespaces: ``levered.commands.v1.<command_with_underscores>``.
HOOKS_NAMESPACE_PREFIX = COMMANDS_NAMESPACE + "."

__all__ = [
    "COMMANDS_NAMESPACE",
    "GROUPS_NAMESPACE",
    "HOOKS_NAMESPACE_PREFIX",
    "PLUGIN_API_VERSION",
    "SUPPORTED_API_VERSIONS",
    "Cell",
    "Command",
    "CommandGroup",
    "CommandHook",
    "Lister",
    "Result",
    "ShowOne",
    "hook_namespace",
    "home",
]


@dataclasses.dataclass(frozen=True)
class CommandGroup:
    """The declaration of a command group, the value of a ``levered.groups.v1`` entry point.

    :param name: the group's word on the command line (``optimizations``); must match the
        entry point's name.
    :param summary: one line shown by ``levered --help``.
    :param api_version: the plugin API version the plugin was built for
        (:data:`PLUGIN_API_VERSION` at build time, written as a literal).
    :param builtin: set only by the distributions shipped with levered: their groups and
        commands win name clashes against other distributions (unless the site config's
        ``override`` says otherwise). Leave it unset in your plugin.
    """

    name: str
    summary: str
    api_version: int
    builtin: bool = False


def hook_namespace(command_name: str) -> str:
    """Return the entry-point namespace of cliff hooks for a command.

    :param command_name: the command as typed, e.g. ``"optimizations create"``.
    :returns: e.g. ``"levered.commands.v1.optimizations_create"``.
    """
    return HOOKS_NAMESPACE_PREFIX + command_name.replace(" ", "_")


def home() -> pathlib.Path:
    """Return the CLI's state directory, where a plugin may keep its own files.

    :returns: ``$LEVERED_HOME`` if set, else ``~/.levered`` (it may not exist yet: create what
        you write into it).
    """
    from levered_core import config

    return config.home()


_LAZY = {
    "Command": "levered_core.command",
    "Lister": "levered_core.command",
    "ShowOne": "levered_core.command",
    "Result": "levered_core.output",
    "Cell": "levered_core.output",
    "CommandHook": "cliff.hooks",
}


def __getattr__(name: str) -> Any:
    # The base classes import cliff; load them only when a command module asks.
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)

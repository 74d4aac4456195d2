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
:func:`hook_namespace`. The helpers the built-in groups render and read with (``Cell``, the
humanized formats, flag parsing, confirmations, the optimization views) are public too, so that a
plugin looks like a built-in. Everything but the constants is imported on first use, so that
declaring a group costs nothing.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cliff.hooks import CommandHook

    from levered_core.client import LeveredClient
    from levered_core.command import Command, Lister, ShowOne
    from levered_core.humanize import ago, bar, fraction, interval, number, parse_time, percent, short_id, variant_label
    from levered_core.inputs import bounded_int, factor_specs, json_flag, result_set, text_flag
    from levered_core.interaction import Cancelled, confirm, progress
    from levered_core.output import Cell, Result
    from levered_core.shapes import optimization as flat_optimization
    from levered_core.views import model_state as model_state_text
    from levered_core.views import optimization as optimization_text
    from levered_core.views import results as results_text

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
    # The type of ``self.client``, for annotations.
    "LeveredClient",
    # Humanized cells: ``Cell(value, short_id)``.
    "ago",
    "bar",
    "fraction",
    "interval",
    "number",
    "parse_time",
    "percent",
    "short_id",
    "variant_label",
    # Reading what users type (each fails with a UsageError, exit 2, before any request).
    "bounded_int",
    "factor_specs",
    "json_flag",
    "text_flag",
    "result_set",
    # Talking to a person on a terminal.
    "Cancelled",
    "confirm",
    "progress",
    # Optimizations, models and results as the built-ins read and show them.
    "flat_optimization",
    "optimization_text",
    "results_text",
    "model_state_text",
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


#: Where each lazily imported public name lives: ``name: (module, attribute)``.
_LAZY: dict[str, tuple[str, str]] = {
    **{name: ("levered_core.command", name) for name in ("Command", "Lister", "ShowOne")},
    **{name: ("levered_core.output", name) for name in ("Cell", "Result")},
    "CommandHook": ("cliff.hooks", "CommandHook"),
    "LeveredClient": ("levered_core.client", "LeveredClient"),
    **{name: ("levered_core.humanize", name) for name in (
        "ago", "bar", "fraction", "interval", "number", "parse_time", "percent", "short_id", "variant_label")},
    **{name: ("levered_core.inputs", name) for name in (
        "bounded_int", "factor_specs", "json_flag", "result_set", "text_flag")},
    **{name: ("levered_core.interaction", name) for name in ("Cancelled", "confirm", "progress")},
    "flat_optimization": ("levered_core.shapes", "optimization"),
    "optimization_text": ("levered_core.views", "optimization"),
    "results_text": ("levered_core.views", "results"),
    "model_state_text": ("levered_core.views", "model_state"),
}


def __getattr__(name: str) -> Any:
    # The base classes import cliff and the client requests: load a name only when a plugin asks.
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value  # later lookups skip this function
    return value

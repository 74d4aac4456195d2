"""Help screens rendered from the plugin manifest, without importing any command module."""

from __future__ import annotations

from typing import Any

from levered_core.errors import ExitCode

GROUP_HINT = "Run `levered <group> --help` for a group's commands, `levered help <command>` for its options."
#: The one place the core names the distribution of the built-in groups: said to whoever installed the core alone.
CORE_ONLY_HINT = ("Only the levered core is installed, whose one group is `plugins`. Add the built-in command\n"
                  "groups with `levered plugins install levered-cli`, or install the whole CLI with\n"
                  "`pipx install levered-cli` (or `pip install levered-cli`).")
#: The core's distribution, as plugin records name it.
CORE_DISTRIBUTION = "levered"


def _rows(pairs: list[tuple[str, str]], indent: int = 2) -> str:
    width = max((len(name) for name, _ in pairs), default=0)
    return "".join(f"{' ' * indent}{name:<{width}}  {summary}".rstrip() + "\n" for name, summary in pairs)


def top_level_commands(manifest: dict[str, Any]) -> list[str]:
    """Return the commands that are not ``<group> <verb>`` (``login``, ``serve`` …)."""
    groups = manifest["groups"]
    return [name for name in manifest["commands"] if name.split()[0] not in groups or name in groups]


def app_help(manifest: dict[str, Any], options_help: str) -> str:
    """Render ``levered --help``: the global options and every installed group."""
    groups = manifest["groups"]
    entries = {name: group["summary"] or "" for name, group in groups.items()}
    for name in top_level_commands(manifest):
        entries.setdefault(name, manifest["commands"][name]["summary"])
    entries.setdefault("help", "Show help for a group or a command (`levered help exit-codes` too)")
    entries.setdefault("complete", "Print a completion script for bash or zsh (`--shell zsh`)")
    hint = f"\n{CORE_ONLY_HINT}\n" if core_only(manifest) else ""
    return f"{options_help.rstrip()}\n\nCommands:\n{_rows(sorted(entries.items()))}\n{GROUP_HINT}\n{hint}"


def core_only(manifest: dict[str, Any]) -> bool:
    """Whether no distribution but the core declares a command group or a hook (loaded or not)."""
    return not manifest.get("hooks") and all(p.get("distribution") == CORE_DISTRIBUTION for p in manifest["plugins"])


def group_commands(manifest: dict[str, Any], group: str) -> list[tuple[str, str]]:
    """Return (verb, summary) for each command of ``group``."""
    prefix = group + " "
    return [(name[len(prefix):], cmd["summary"]) for name, cmd in manifest["commands"].items()
            if name.startswith(prefix)]


def group_help(manifest: dict[str, Any], group: str) -> str:
    """Render ``levered <group> --help``: the group's summary and its commands."""
    info = manifest["groups"][group]
    commands = group_commands(manifest, group)
    listing = _rows(commands) if commands else "  (none yet: this group has no commands installed)\n"
    origin = f"Provided by {info['distribution']}." if info.get("distribution") else ""
    return (f"usage: levered {group} <command> [<args>]\n\n{info['summary'] or ''}\n\n"
            f"Commands:\n{listing}\nRun `levered help {group} <command>` for a command's options. {origin}\n")


def exit_codes_help() -> str:
    """Render ``levered help exit-codes``."""
    return "Exit codes:\n" + _rows([(str(int(code)), code.meaning) for code in ExitCode])

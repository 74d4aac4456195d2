"""Finding command groups and commands through stevedore, and isolating broken plugins.

Discovery loads every group, command and command-hook entry point (``plugin_api``'s namespaces) once,
checks each plugin's API version, resolves name clashes and records where each plugin came
from. The result is a plain-JSON manifest (see :mod:`levered_core.manifest`), cached so
that ``--help`` and completion never import a plugin again until the installed set changes.
A plugin that fails costs one warning line, never the CLI.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import os
import re
import traceback
from typing import Any
from urllib.parse import unquote, urlsplit

import stevedore
from stevedore import _cache as stevedore_cache

from levered_core import __version__
from levered_core.plugin_api import (
    COMMANDS_NAMESPACE,
    GROUPS_NAMESPACE,
    HOOKS_NAMESPACE_PREFIX,
    SUPPORTED_API_VERSIONS,
    CommandGroup,
)

CORE_DISTRIBUTION = "levered"


def normalize(name: str) -> str:
    """Return a distribution name in its PEP 503 form (``Levered_Hello`` -> ``levered-hello``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _provenance() -> tuple[dict[tuple[str, str, str], importlib.metadata.Distribution], list[dict[str, Any]]]:
    """Map (namespace, entry point name, value) to its distribution; list the command hooks."""
    owners: dict[tuple[str, str, str], importlib.metadata.Distribution] = {}
    hooks = []
    seen: set[tuple[str, str, str]] = set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group in (GROUPS_NAMESPACE, COMMANDS_NAMESPACE):
                owners.setdefault((ep.group, ep.name, ep.value), dist)
            elif ep.group.startswith(HOOKS_NAMESPACE_PREFIX) and (ep.group, ep.name, ep.value) not in seen:
                seen.add((ep.group, ep.name, ep.value))  # a distribution found twice on sys.path counts once
                command = ep.group[len(HOOKS_NAMESPACE_PREFIX):].replace("_", " ")
                location, editable = _origin(dist)
                hooks.append({"command": command, "name": ep.name, "target": ep.value,
                              "distribution": dist.metadata["Name"], "version": dist.version,
                              "location": location, "editable": editable, "status": "loaded", "error": None})
    return owners, sorted(hooks, key=lambda h: (h["command"], h["name"]))


def _origin(dist: importlib.metadata.Distribution | None) -> tuple[str | None, bool]:
    """Return where a distribution came from and whether it is an editable install."""
    if dist is None:
        return None, False
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        direct = None
    if isinstance(direct, dict) and str(direct.get("url", "")).startswith("file://"):
        editable = bool((direct.get("dir_info") or {}).get("editable"))
        return unquote(urlsplit(direct["url"]).path), editable
    return str(dist.locate_file("")), False


class _Policy:
    """Which plugins may load and who wins a clash: the site config, then ``LEVERED_LOAD_PLUGINS``.

    Site config (``/etc/levered/config.json`` or ``LEVERED_SITE_CONFIG``), key ``plugins``:
    ``{"allow": [...], "deny": [...], "override": {"<command>": "<distribution>"}}``; entries
    of ``allow`` and ``deny`` are group or distribution names (command hooks go by their
    distribution; names compare in PEP 503 form). Users can narrow loading
    further with ``LEVERED_LOAD_PLUGINS`` but cannot lift a site restriction.
    """

    def __init__(self) -> None:
        from levered_core import config

        self.site_path = config.site_config_path()
        site = config.read_site_plugins()
        self.allow = {normalize(str(n)) for n in site.get("allow") or []} or None
        self.deny = {normalize(str(n)) for n in site.get("deny") or []}
        self.override: dict[str, str] = {k: normalize(str(v)) for k, v in dict(site.get("override") or {}).items()}
        wanted = os.environ.get("LEVERED_LOAD_PLUGINS")
        self.user_allow = {normalize(i.strip()) for i in wanted.split(",") if i.strip()} if wanted else None

    def refusal(self, names: set[str]) -> str | None:
        """Why a plugin known by ``names`` (group and distribution) may not load, or None if it may."""
        names = {normalize(name) for name in names if name}
        if CORE_DISTRIBUTION in names:
            return None
        if names & self.deny:
            return f"denied by the site config {self.site_path}"
        if self.allow is not None and not names & self.allow:
            return f"not in the allow-list of the site config {self.site_path}"
        if self.user_allow is not None and not names & self.user_allow:
            return "not in LEVERED_LOAD_PLUGINS"
        return None


def _failure(exc: BaseException) -> tuple[str, str]:
    message = f"{type(exc).__name__}: {exc}"
    return message, "".join(traceback.format_exception(exc))


class _Discovery:
    """One discovery run: groups first, then the commands of the groups that loaded."""

    def __init__(self) -> None:
        self.owners, self.hooks = _provenance()
        self.groups: dict[str, dict[str, Any]] = {}
        self.plugins: list[dict[str, Any]] = []
        self.commands: dict[str, dict[str, Any]] = {}
        self.problems: list[dict[str, Any]] = []
        self.failed_commands: dict[str, str] = {}
        self.policy = _Policy()
        # Distributions whose group is declared ``builtin`` (those shipped with levered): they win
        # every name clash against other distributions, whatever their names or install order
        # (the site config's ``override`` can decide otherwise). The core names none of them.
        self.builtin_dists = {CORE_DISTRIBUTION}

    def _dist(self, namespace: str, ep: importlib.metadata.EntryPoint) -> importlib.metadata.Distribution | None:
        return self.owners.get((namespace, ep.name, ep.value))

    def _plugin_record(self, ep: importlib.metadata.EntryPoint, dist: importlib.metadata.Distribution | None) -> dict[str, Any]:
        location, editable = _origin(dist)
        return {
            "group": ep.name,
            "summary": None,
            "distribution": dist.metadata["Name"] if dist else None,
            "version": dist.version if dist else None,
            "location": location,
            "editable": editable,
            "entry_point": ep.value,
            "api_version": None,
            "status": "loaded",
            "error": None,
            "commands": [],
        }

    def _fail(self, record: dict[str, Any], status: str, message: str, trace: str | None = None) -> None:
        record["status"], record["error"] = status, message
        dist = f" ({record['distribution']} {record['version']})" if record["distribution"] else ""
        self.problems.append({"message": f"plugin '{record['group']}'{dist} {message}", "traceback": trace})

    def load_groups(self) -> None:
        failures: dict[str, BaseException] = {}
        manager: stevedore.ExtensionManager[Any] = stevedore.ExtensionManager(
            GROUPS_NAMESPACE, on_load_failure_callback=lambda _m, ep, exc: failures.__setitem__(ep.value, exc)
        )
        loaded = {ext.entry_point.value: ext for ext in manager}
        for ext in loaded.values():
            dist = self._dist(GROUPS_NAMESPACE, ext.entry_point)
            if dist is not None and isinstance(ext.plugin, CommandGroup) and ext.plugin.builtin:
                self.builtin_dists.add(normalize(dist.metadata["Name"]))
        entry_points = sorted(manager.list_entry_points(), key=self._group_order)
        for ep in entry_points:
            dist = self._dist(GROUPS_NAMESPACE, ep)
            record = self._plugin_record(ep, dist)
            self.plugins.append(record)
            refusal = self.policy.refusal({ep.name, record["distribution"] or ""})
            if refusal:
                record["status"], record["error"] = "disabled", refusal
            elif ep.value in failures:
                message, trace = _failure(failures[ep.value])
                self._fail(record, "failed", f"failed to load: {message}", trace)
            else:
                self._check_group(record, loaded[ep.value].plugin)

    def _rank(self, name: str, dist: str | None) -> int:
        """Who owns the group or command ``name``: the site's override, then built-ins, then others."""
        dist = normalize(dist or "")
        if self.policy.override.get(name) == dist:
            return 0
        return 1 if dist in self.builtin_dists else 2

    def _group_order(self, ep: importlib.metadata.EntryPoint) -> tuple[int, str, int, str]:
        dist = self._dist(GROUPS_NAMESPACE, ep)
        name = dist.metadata["Name"] if dist else ""
        # The core's group first, then by group; within one group the owner first (never by install
        # order or distribution name: `aaa-evil` must not take over `optimizations`).
        return (0 if name == CORE_DISTRIBUTION else 1, ep.name, self._rank(ep.name, name), normalize(name))

    def _builtin_commands(self) -> dict[str, str]:
        """The one-word commands of the built-in distributions (``whoami``), by distribution."""
        return {name: dist.metadata["Name"] for (namespace, name, _), dist in self.owners.items()
                if namespace == COMMANDS_NAMESPACE and " " not in name.strip()
                and normalize(dist.metadata["Name"]) in self.builtin_dists}

    def _check_group(self, record: dict[str, Any], group: Any) -> None:
        if not isinstance(group, CommandGroup):
            self._fail(record, "failed", f"is not a CommandGroup (got {type(group).__name__})")
            return
        record["summary"], record["api_version"] = group.summary, group.api_version
        if group.api_version not in SUPPORTED_API_VERSIONS:
            supported = ", ".join(f"v{v}" for v in sorted(SUPPORTED_API_VERSIONS))
            self._fail(record, "incompatible", f"was built for plugin API v{group.api_version}, but levered "
                       f"{__version__} supports {supported}: install a version of the plugin made for this levered")
        elif group.name != record["group"]:
            self._fail(record, "failed", f"declares group {group.name!r} under entry point {record['group']!r}")
        elif record["group"] in self.groups:
            owner = self.groups[record["group"]]
            self._fail(record, "clash", f"declares group '{group.name}', already provided by "
                       f"{owner['distribution']}; its commands join that group")
        elif (builtin := self._builtin_commands().get(group.name)) and \
                self._rank(group.name, record["distribution"]) > self._rank(group.name, builtin):
            self._fail(record, "clash", f"declares group '{group.name}', the name of the built-in command "
                       f"'{group.name}' of {builtin}; its other commands still load")
        else:
            self.groups[record["group"]] = record

    def load_commands(self) -> None:
        failures: dict[str, BaseException] = {}
        manager: stevedore.ExtensionManager[Any] = stevedore.ExtensionManager(
            COMMANDS_NAMESPACE, on_load_failure_callback=lambda _m, ep, exc: failures.__setitem__(ep.value, exc)
        )
        loaded = {ext.entry_point.value: ext.plugin for ext in manager}
        by_dist = {p["distribution"]: p for p in self.plugins}

        def order(ep: importlib.metadata.EntryPoint) -> tuple[str, int, str]:
            dist = self._dist(COMMANDS_NAMESPACE, ep)
            name = dist.metadata["Name"] if dist else ""
            return ep.name, self._rank(" ".join(ep.name.replace("_", " ").split()), name), normalize(name)

        for ep in sorted(manager.list_entry_points(), key=order):
            dist = self._dist(COMMANDS_NAMESPACE, ep)
            plugin = by_dist.get(dist.metadata["Name"] if dist else None)
            name = " ".join(ep.name.replace("_", " ").split())
            if plugin is None:
                owner = dist.metadata["Name"] if dist else "an unknown distribution"
                self.problems.append({"message": f"command '{name}' of {owner} was skipped: the distribution "
                                      f"declares no command group in {GROUPS_NAMESPACE}", "traceback": None})
            elif plugin["status"] in ("loaded", "clash", "partial"):
                self._add_command(plugin, name, ep, loaded.get(ep.value), failures.get(ep.value))

    def _add_command(self, plugin: dict[str, Any], name: str, ep: importlib.metadata.EntryPoint,
                     factory: Any, error: BaseException | None) -> None:
        if error is not None or factory is None:
            message, trace = _failure(error) if error else ("did not load", None)
            failure = f"command '{name}' failed to load: {message}"
            self.problems.append({"message": f"command '{name}' of {plugin['distribution']} failed to load: "
                                  f"{message}", "traceback": trace})
            # The group still works; `plugins list` and the command itself say what is missing.
            plugin["status"] = "partial"
            plugin["error"] = f"{plugin['error']}; {failure}" if plugin["error"] else failure
            self.failed_commands[name] = f"{failure} ({plugin['distribution']} {plugin['version']})"
            return
        existing = self.commands.get(name)
        if existing is not None:
            keep, drop = (plugin, existing) if self._command_rank(name, plugin) < \
                self._command_rank(name, existing) else (existing, plugin)
            self.problems.append({"message": f"command '{name}' of {drop['distribution']} clashes with "
                                  f"{keep['distribution']}; kept the one from {keep['distribution']}",
                                  "traceback": None})
            if keep is existing:
                return
        summary = (getattr(factory, "_description", "") or inspect.getdoc(factory) or "").split("\n")[0]
        self.commands[name] = {
            "name": name,
            "target": ep.value,
            "summary": summary.strip().rstrip("."),
            "distribution": plugin["distribution"],
            "group": plugin["group"],
        }

    def _command_rank(self, name: str, provider: dict[str, Any]) -> tuple[int, int]:
        """Lower wins a command clash: the site's override, the distribution owning the command's
        group, the built-in distributions, then the first found (ties keep the command found first)."""
        dist = normalize(provider["distribution"] or "")
        if self.policy.override.get(name) == dist:
            return (0, 0)
        group_owner = self.groups.get(name.split()[0], {}).get("distribution")
        if group_owner and normalize(group_owner) == dist:
            return (1, 0)
        return (2, self._rank(name, dist))

    def load_hooks(self) -> None:
        """Apply the plugin policy to command hooks (by distribution) and check that each imports."""
        for hook in self.hooks:
            refusal = self.policy.refusal({hook["distribution"] or ""})
            if refusal:
                hook["status"], hook["error"] = "disabled", refusal
                continue
            try:
                importlib.metadata.EntryPoint(hook["name"], hook["target"], "").load()
            except Exception as exc:
                message, trace = _failure(exc)
                hook["status"], hook["error"] = "failed", f"failed to load: {message}"
                self.problems.append({
                    "message": f"hook '{hook['name']}' ({hook['target']}) for '{hook['command']}' failed to load: "
                               f"{message}; the command runs without it ({hook['distribution']} {hook['version']})",
                    "traceback": trace})

    def result(self) -> dict[str, Any]:
        for command in self.commands.values():
            for plugin in self.plugins:
                if plugin["distribution"] == command["distribution"]:
                    plugin["commands"].append(command["name"])
        return {
            "core_version": __version__,
            "groups": {name: {"summary": g["summary"], "distribution": g["distribution"]}
                       for name, g in sorted(self.groups.items())},
            "commands": dict(sorted(self.commands.items())),
            "plugins": self.plugins,
            "hooks": self.hooks,
            "failed_commands": self.failed_commands,
            "problems": self.problems,
        }


def discover() -> dict[str, Any]:
    """Load every installed command group, command and hook; return the manifest data."""
    # Within one process the installed set can change (``plugins install``): drop stale caches.
    importlib.invalidate_caches()
    stevedore.ExtensionManager.ENTRY_POINT_CACHE.clear()
    internal = getattr(getattr(stevedore_cache, "_c", None), "_internal", None)  # stevedore's per-process memo
    if isinstance(internal, dict):
        internal.clear()
    discovery = _Discovery()
    discovery.load_groups()
    discovery.load_commands()
    discovery.load_hooks()
    return discovery.result()

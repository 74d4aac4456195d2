"""Design factors, variants, numbering, keys and exclusions (API.md 2.1) — pure Python."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Any

from levered_server.errors import FieldErrors

MAX_COMBINATIONS = 1024
MAX_CONTEXT_FACTORS = 20
MAX_DECLARED_LEVELS = 1000
MAX_EXCLUDED = 1024
LEVEL_MAX_CHARS = 500


def variant_key(variant: dict[str, Any]) -> str:
    """Canonical JSON of a variant: sorted keys, no whitespace, UTF-8."""
    return json.dumps(variant, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def holdout_bucket(optimization_id: str, anonymous_id: str) -> int:
    """`uint64_be(SHA-256(opt + ":" + a)[0:8]) mod 10000` (2.4)."""
    digest = hashlib.sha256(f"{optimization_id.lower()}:{anonymous_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000


def in_holdout(optimization_id: str, anonymous_id: str, holdout_percentage: int) -> bool:
    """Whether the user is in the optimization's holdout."""
    return holdout_bucket(optimization_id, anonymous_id) < holdout_percentage * 100


def _infer_dtype(levels: list[Any]) -> str:
    return "bool" if levels and all(isinstance(v, bool) for v in levels) else "str"


def _check_levels(errors: FieldErrors, path: str, dtype: str, levels: list[Any]) -> None:
    seen: set[Any] = set()
    for i, level in enumerate(levels):
        where = f"{path}.levels[{i}]"
        if dtype == "bool":
            if not isinstance(level, bool):
                errors.add(where, "type", "must be true or false")
                continue
        elif not isinstance(level, str):
            errors.add(where, "type", "must be a string")
            continue
        elif not level:
            errors.add(where, "too_short", "must be 1-500 characters")
        elif len(level) > LEVEL_MAX_CHARS:
            errors.add(where, "too_long", "must be 1-500 characters")
        if (type(level), level) in seen:
            errors.add(where, "duplicate", f"level {level!r} is repeated")
        seen.add((type(level), level))


def normalize_config(raw: dict[str, Any], metric_reward_type: str | None,
                     errors: FieldErrors) -> dict[str, Any]:
    """Check a `training_data_config` (already structurally valid) and fill its defaults."""
    p = "training_data_config"
    names: set[str] = set()
    design = []
    for i, f in enumerate(raw["design_factors"]):
        path = f"{p}.design_factors[{i}]"
        dtype = f.get("dtype") or _infer_dtype(f["levels"])
        if f["name"] in names:
            errors.add(f"{path}.name", "duplicate", f"factor name {f['name']!r} is repeated")
        names.add(f["name"])
        _check_levels(errors, path, dtype, f["levels"])
        design.append({"name": f["name"], "dtype": dtype, "levels": list(f["levels"])})
    counts = [len(f["levels"]) for f in design]
    total = math.prod(counts) if counts else 0
    if total > MAX_COMBINATIONS:
        product = " × ".join(str(c) for c in counts)
        errors.add(f"{p}.design_factors", "too_many",
                   f"{product} = {total:,} variants; the limit is {MAX_COMBINATIONS:,}")
    context = []
    if len(raw.get("context_factors") or []) > MAX_CONTEXT_FACTORS:
        errors.add(f"{p}.context_factors", "too_many",
                   f"at most {MAX_CONTEXT_FACTORS} context factors")
    for i, f in enumerate(raw.get("context_factors") or []):
        path = f"{p}.context_factors[{i}]"
        levels = f.get("levels") or []
        dtype = f.get("dtype") or _infer_dtype(levels)
        if f["name"] in names:
            errors.add(f"{path}.name", "duplicate", f"factor name {f['name']!r} is repeated")
        names.add(f["name"])
        if len(levels) > MAX_DECLARED_LEVELS:
            errors.add(f"{path}.levels", "too_many",
                       f"at most {MAX_DECLARED_LEVELS} declared levels")
        _check_levels(errors, path, dtype, levels)
        context.append({"name": f["name"], "dtype": dtype, "levels": list(levels)})
    reward = dict(raw.get("reward") or {})
    reward.setdefault("name", "reward")
    if reward.get("type") is None:
        reward["type"] = metric_reward_type or "bool"
    elif metric_reward_type is not None and reward["type"] != metric_reward_type:
        errors.add(f"{p}.reward.type", "type_mismatch",
                   f"the metric's reward type is {metric_reward_type!r}")
    attribution = {"type": "last_touch", "conversion_window_hours": 24,
                   **(raw.get("attribution") or {})}
    return {"reward": {"name": reward["name"], "type": reward["type"]},
            "design_factors": design, "context_factors": context,
            "attribution": attribution}


def normalize_exclusions(raw: list[Any], design: list[dict[str, Any]],
                         errors: FieldErrors) -> list[dict[str, Any]]:
    """Check excluded combinations and order their keys as the design factors."""
    if len(raw) > MAX_EXCLUDED:
        errors.add("excluded_combinations", "too_many", f"at most {MAX_EXCLUDED} entries")
        return []
    factors = {f["name"]: f for f in design}
    out, seen = [], set()
    for i, entry in enumerate(raw):
        path = f"excluded_combinations[{i}]"
        if not isinstance(entry, dict):
            errors.add(path, "type", "must be an object")
            continue
        if not entry:
            errors.add(path, "too_short", "must name at least one factor")
            continue
        ok = True
        for name, level in entry.items():
            f = factors.get(name)
            if f is None:
                errors.add(f"{path}.{name}", "invalid_value", f"{name!r} is not a design factor")
                ok = False
            elif not any(type(level) is type(v) and level == v for v in f["levels"]):
                errors.add(f"{path}.{name}", "invalid_value",
                           f"{level!r} is not a level of {name}")
                ok = False
        if not ok:
            continue
        ordered = {f["name"]: entry[f["name"]] for f in design if f["name"] in entry}
        key = variant_key(ordered)
        if key in seen:
            errors.add(path, "duplicate", "this combination is listed twice")
            continue
        seen.add(key)
        if all(design_levels_first(design)[k] == v for k, v in ordered.items()):
            errors.add(path, "excluded_baseline", "it would exclude the baseline (variant #1)")
            continue
        out.append(ordered)
    return out


def design_levels_first(design: list[dict[str, Any]]) -> dict[str, Any]:
    """The baseline variant: every factor at its first level."""
    return {f["name"]: f["levels"][0] for f in design}


def all_variants(design: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Every combination with its number (row-major, last factor fastest)."""
    names = [f["name"] for f in design]
    return [(i + 1, dict(zip(names, combo, strict=False)))
            for i, combo in enumerate(itertools.product(*(f["levels"] for f in design)))]


def _matches(variant: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(type(variant[k]) is type(v) and variant[k] == v for k, v in entry.items())


def servable_variants(design: list[dict[str, Any]],
                      excluded: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Combinations that match no excluded entry, by number."""
    return [(n, v) for n, v in all_variants(design) if not is_excluded(v, excluded)]


def is_excluded(variant: dict[str, Any], excluded: list[dict[str, Any]]) -> bool:
    """Whether a complete variant matches an excluded entry (without listing every variant)."""
    return any(_matches(variant, e) for e in excluded)


def variant_number(design: list[dict[str, Any]], variant: dict[str, Any]) -> int | None:
    """The number of a complete variant, or None when a level is unknown."""
    number = 0
    for f in design:
        value = variant.get(f["name"])
        idx = next((i for i, lv in enumerate(f["levels"])
                    if type(lv) is type(value) and lv == value), None)
        if idx is None:
            return None
        number = number * len(f["levels"]) + idx
    return number + 1


def variant_of(design: list[dict[str, Any]], number: int) -> dict[str, Any]:
    """The variant with a given number."""
    idx, out = number - 1, {}
    for f in reversed(design):
        idx, pos = divmod(idx, len(f["levels"]))
        out[f["name"]] = f["levels"][pos]
    return {f["name"]: out[f["name"]] for f in design}

"""Sufficient statistics per (variant, context cell, holdout flag), as the warehouse returns them.

The training query (written per dialect elsewhere) joins exposures to attributed rewards (API.md
2.5) and returns one row per group of ``(variant_number, ctx_0 … ctx_{J−1}, in_holdout)`` with
these columns (names are the contract between the SQL and :meth:`CellStats.from_rows`):

=====================  ==========================================================================
``variant_number``     integer, the exposure's variant (1-based, 2.1)
``ctx_0`` … ``ctx_{J−1}``  text or NULL: the value of context factor j (optimization order) in
                       the exposure's context; strings as sent, booleans as ``'true'``/``'false'``
                       (DuckDB ``json_extract_string(context, '$.name')``, PostgreSQL
                       ``context::jsonb ->> 'name'``); NULL when absent or null
``in_holdout``         boolean
``exposures``          ``COUNT(*)`` exposure rows
``users``              distinct ``anonymous_id``: DuckDB's HyperLogLog ``approx_count_distinct``
                       (median error ~2 %), exact ``COUNT(DISTINCT)`` on PostgreSQL; no
                       model reads it
``reward_count``       exposures whose attributed reward r is > 0
``reward_sum``         Σ r (pending exposures count as r = 0)
``reward_sum_sq``      Σ r²
``propensity_count``   exposures with a non-NULL propensity π (rows without one are left out of
                       every ``ipw_*`` sum)
``ipw_weight_sum``     Σ 1/π
``ipw_weight_sq_sum``  Σ 1/π²
``ipw_reward_sum``     Σ r/π
``ipw_reward_sq_sum``  Σ r²/π
``ipw_reward_w2_sum``  Σ r/π²
``ipw_reward_sq_w2_sum``  Σ r²/π²
=====================  ==========================================================================

Holdout rows carry π = 1. Everything is additive, so partial aggregates can be summed. With
``r`` the exposure's attributed reward (0 when none) and ``w = 1.0 / propensity``, the select list
is, in DuckDB::

    SELECT variant_number, json_extract_string(context, '$.device_type') AS ctx_0, in_holdout,
           count(*) AS exposures, approx_count_distinct(anonymous_id) AS users,
           count(*) FILTER (WHERE r > 0) AS reward_count, sum(r) AS reward_sum,
           sum(r * r) AS reward_sum_sq, count(propensity) AS propensity_count,
           sum(w) AS ipw_weight_sum, sum(w * w) AS ipw_weight_sq_sum, sum(r * w) AS ipw_reward_sum,
           sum(r * r * w) AS ipw_reward_sq_sum, sum(r * w * w) AS ipw_reward_w2_sum,
           sum(r * r * w * w) AS ipw_reward_sq_w2_sum
    FROM attributed GROUP BY ALL
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

SUM_COLUMNS = ("exposures", "users", "reward_count", "reward_sum", "reward_sum_sq",
               "propensity_count", "ipw_weight_sum", "ipw_weight_sq_sum", "ipw_reward_sum",
               "ipw_reward_sq_sum", "ipw_reward_w2_sum", "ipw_reward_sq_w2_sum")
MAX_CONTEXT_LEVELS = 50
_NONE = np.array(None, dtype=object)


def context_text(value: Any) -> str | None:
    """Return a context value as the training query spells it (bool → 'true'/'false')."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _floats(column: Any, n: int) -> np.ndarray:
    """A sum column as floats; NULL (or a missing column) is 0."""
    if column is None:
        return np.zeros(n)
    if isinstance(column, np.ndarray) and column.dtype.kind in "biuf":
        out = np.array(np.ma.getdata(column), dtype=float)
        out[np.ma.getmaskarray(column)] = 0.0
        return out
    return np.array([float(v or 0.0) for v in column], dtype=float).reshape(-1)


def _texts(column: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A context column as an object array of texts and its NULL mask."""
    if isinstance(column, np.ndarray):
        values = np.array(np.ma.getdata(column), dtype=object).reshape(-1)
        null = np.ma.getmaskarray(column).reshape(-1) | np.equal(values, _NONE)
    else:
        values = np.empty(n, dtype=object)
        values[:] = [context_text(v) for v in column]
        null = np.equal(values, _NONE)
    return values, np.asarray(null, dtype=bool)


@dataclasses.dataclass(frozen=True)
class CellStats:
    """Aggregates per cell; ``context[i, j]`` indexes ``context_levels[j]``, −1 = outside it.

    ``context_levels[j]`` holds the values of factor j seen in training (at most
    ``MAX_CONTEXT_LEVELS`` most frequent; ``None`` stands for a missing value). ``sums`` maps
    every name of :data:`SUM_COLUMNS` to a float array aligned with ``variant``.
    """

    variant: np.ndarray
    context: np.ndarray
    in_holdout: np.ndarray
    sums: Mapping[str, np.ndarray]
    context_factors: tuple[str, ...] = ()
    context_levels: tuple[tuple[str | None, ...], ...] = ()

    def __getattr__(self, name: str) -> np.ndarray:
        # Lets callers write stats.exposures for any summed column.
        sums = self.__dict__.get("sums", {})
        if name in sums:
            return sums[name]  # type: ignore[no-any-return]
        raise AttributeError(name)

    @property
    def n_rows(self) -> int:
        """Number of cells."""
        return int(self.variant.size)

    @property
    def observations(self) -> int:
        """Total exposures (holdout included)."""
        return int(self.sums["exposures"].sum()) if self.n_rows else 0

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], context_factors: Sequence[str] = (),
                  max_levels: int = MAX_CONTEXT_LEVELS) -> CellStats:
        """Build from the query's rows (dicts keyed by the column names above)."""
        rows = list(rows)
        names = ("variant_number", "in_holdout", *SUM_COLUMNS,
                 *(f"ctx_{j}" for j in range(len(context_factors))))
        return cls.from_columns({c: [r.get(c) for r in rows] for c in names}, context_factors,
                                max_levels)

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any], context_factors: Sequence[str] = (),
                     max_levels: int = MAX_CONTEXT_LEVELS) -> CellStats:
        """Build from the query's columns (name → sequence, all of one length).

        A column is a list of converted values (as in :meth:`from_rows`) or a numpy array, as
        DuckDB's ``fetchnumpy`` returns it (NULLs masked). An array ``ctx_j`` holds text or
        None only (the query's ``->>``); list values are spelled with :func:`context_text`.
        Missing sum columns and NULL sums are zero. Vectorized: no Python object per cell
        beyond the context texts.
        """
        n = len(columns["variant_number"])
        exposures = _floats(columns.get("exposures"), n)
        j_count = len(context_factors)
        vocab: list[tuple[str | None, ...]] = []
        codes = np.full((n, j_count), -1, dtype=np.int64)
        for j in range(j_count):
            values, null = _texts(columns[f"ctx_{j}"], n)
            levels: list[str | None] = []
            inverse = np.full(n, -1, dtype=np.int64)
            if (~null).any():
                uniq, inv = np.unique(values[~null], return_inverse=True)
                levels = list(uniq)
                inverse[~null] = inv.reshape(-1)
            if null.any():
                inverse[null] = len(levels)
                levels.append(None)
            # Sequential per level in row order, like adding the rows one by one.
            totals = np.bincount(inverse, weights=exposures, minlength=len(levels))
            # Most frequent first; ties by text so the vocabulary does not depend on row order.
            order = sorted(range(len(levels)), key=lambda k: (-totals[k], levels[k] is None,
                                                              levels[k] or ""))[:max_levels]
            vocab.append(tuple(levels[k] for k in order))
            remap = np.full(len(levels), -1, dtype=np.int64)
            remap[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int64)
            codes[:, j] = remap[inverse]
        sums = {c: exposures if c == "exposures" else _floats(columns.get(c), n)
                for c in SUM_COLUMNS}
        variant = columns["variant_number"]
        if isinstance(variant, np.ndarray):
            variant = np.ma.getdata(variant).astype(np.int64)
        else:
            variant = np.array([int(v) for v in variant], dtype=np.int64)
        hold = columns.get("in_holdout")
        if hold is None:
            holdout = np.zeros(n, bool)
        elif isinstance(hold, np.ndarray):
            holdout = np.ma.getdata(hold).astype(bool) & ~np.ma.getmaskarray(hold)
        else:
            holdout = np.array([bool(v) for v in hold], dtype=bool)
        return cls.build(variant, codes, holdout, sums, tuple(context_factors), tuple(vocab))

    @classmethod
    def build(cls, variant: np.ndarray, context: np.ndarray | None, in_holdout: np.ndarray | None,
              sums: Mapping[str, Any], context_factors: tuple[str, ...] = (),
              context_levels: tuple[tuple[str | None, ...], ...] = ()) -> CellStats:
        """Build from arrays, merging duplicate cells; missing sum columns are zero."""
        variant = np.asarray(variant, dtype=np.int64).reshape(-1)
        n = variant.size
        if context is None:
            ctx = np.zeros((n, len(context_factors)), np.int64)
        else:
            ctx = np.asarray(context, np.int64)
            ctx = ctx.reshape(n, -1) if ctx.ndim < 2 else ctx
        hold = np.zeros(n, bool) if in_holdout is None else np.asarray(in_holdout, bool).reshape(-1)
        keys = np.column_stack([variant, ctx, hold.astype(np.int64)])
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        merged = {}
        for c in SUM_COLUMNS:
            values = np.asarray(sums.get(c, np.zeros(n)), dtype=float).reshape(-1)
            merged[c] = np.bincount(inverse, weights=values, minlength=len(uniq)).astype(float)
        return cls(uniq[:, 0], uniq[:, 1:-1], uniq[:, -1].astype(bool), merged,
                   context_factors, context_levels)

    def subset(self, mask: np.ndarray) -> CellStats:
        """Return the cells where ``mask`` is true."""
        return CellStats(self.variant[mask], self.context[mask], self.in_holdout[mask],
                         {c: v[mask] for c, v in self.sums.items()}, self.context_factors,
                         self.context_levels)

    def per_variant(self, numbers: np.ndarray, column: str, *, holdout: bool | None = None) -> np.ndarray:
        """Sum ``column`` per variant number in ``numbers`` (holdout rows: None = all)."""
        keep = np.ones(self.n_rows, bool) if holdout is None else self.in_holdout == holdout
        pos = np.searchsorted(numbers, self.variant)
        pos = np.clip(pos, 0, len(numbers) - 1)
        keep &= numbers[pos] == self.variant
        return np.bincount(pos[keep], weights=self.sums[column][keep], minlength=len(numbers))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form (the server may store it to refit a version after a restart)."""
        return {"variant": self.variant.tolist(), "context": self.context.tolist(),
                "in_holdout": self.in_holdout.tolist(),
                "sums": {c: v.tolist() for c, v in self.sums.items()},
                "context_factors": list(self.context_factors),
                "context_levels": [list(levels) for levels in self.context_levels]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellStats:
        """Rebuild from :meth:`to_dict`."""
        factors = tuple(data["context_factors"])
        context = np.asarray(data["context"], np.int64).reshape(len(data["variant"]), len(factors))
        return cls(np.asarray(data["variant"], np.int64), context,
                   np.asarray(data["in_holdout"], bool),
                   {c: np.asarray(data["sums"][c], float) for c in SUM_COLUMNS}, factors,
                   tuple(tuple(levels) for levels in data["context_levels"]))

    def context_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the distinct context code rows and their exposure shares (all rows)."""
        if self.n_rows == 0:
            return np.zeros((1, self.context.shape[1]), np.int64), np.ones(1)
        cells, inverse = np.unique(self.context, axis=0, return_inverse=True)
        weight = np.bincount(inverse.reshape(-1), weights=self.sums["exposures"], minlength=len(cells))
        total = weight.sum()
        return cells, (weight / total if total > 0 else np.full(len(cells), 1 / len(cells)))

    def encode_context(self, context: Mapping[str, Any]) -> np.ndarray:
        """Return the codes of a serve-time context; values not seen in training get −1."""
        codes = np.full(len(self.context_factors), -1, dtype=np.int64)
        for j, (name, levels) in enumerate(zip(self.context_factors, self.context_levels, strict=True)):
            value = context_text(context.get(name))
            if value in levels:
                codes[j] = levels.index(value)
        return codes

"""Map variant numbers to design-factor level indexes and back (API.md 2.1), as arrays."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


def variant_number(indexes: Sequence[int] | np.ndarray, level_counts: Sequence[int]) -> np.ndarray:
    """Return `1 + Σ_j i_j × Π_{m>j} n_m` for rows of 0-based level indexes (last factor fastest)."""
    idx = np.atleast_2d(np.asarray(indexes, dtype=np.int64))
    counts = np.asarray(level_counts, dtype=np.int64)
    strides = np.concatenate([np.cumprod(counts[::-1])[::-1][1:], [1]])
    return np.asarray(1 + idx @ strides)


def level_indexes(numbers: Sequence[int] | np.ndarray, level_counts: Sequence[int]) -> np.ndarray:
    """Return the (n, factors) 0-based level indexes of 1-based variant numbers."""
    rest = np.asarray(numbers, dtype=np.int64).reshape(-1) - 1
    out = np.empty((rest.size, len(level_counts)), dtype=np.int64)
    for j in range(len(level_counts) - 1, -1, -1):
        rest, out[:, j] = np.divmod(rest, level_counts[j])
    return out


@dataclasses.dataclass(frozen=True)
class Design:
    """The servable variants of an optimization: numbers (ascending) and their level indexes."""

    level_counts: tuple[int, ...]
    numbers: np.ndarray
    levels: np.ndarray
    names: tuple[str, ...] = ()

    @classmethod
    def build(cls, level_counts: Sequence[int], servable: Sequence[int] | None = None,
              names: Sequence[str] = ()) -> Design:
        """Build from level counts and the servable numbers (all combinations when None)."""
        counts = tuple(int(n) for n in level_counts)
        total = int(np.prod(counts))
        numbers = np.arange(1, total + 1) if servable is None else np.unique(np.asarray(servable))
        if numbers.size < 1 or numbers[0] < 1 or numbers[-1] > total:
            raise ValueError("servable variant numbers out of range")
        names = tuple(names) or tuple(f"factor_{f}" for f in range(len(counts)))
        if len(names) != len(counts):
            raise ValueError("one name per design factor")
        return cls(counts, numbers.astype(np.int64), level_indexes(numbers, counts), names)

    @property
    def k(self) -> int:
        """Number of servable variants."""
        return int(self.numbers.size)

    def position(self, numbers: Sequence[int] | np.ndarray) -> np.ndarray:
        """Return the index into `numbers` of each variant number, −1 if not servable."""
        numbers = np.asarray(numbers, dtype=np.int64)
        pos = np.searchsorted(self.numbers, numbers)
        pos = np.clip(pos, 0, self.k - 1)
        return np.where(self.numbers[pos] == numbers, pos, -1)

    def indicator(self) -> np.ndarray:
        """Return the (Σ levels, K) 0/1 matrix of which factor level each variant has.

        Rows run over factors in order, then levels; sums over factor blocks and level means
        of (S, K) draws become one matrix product with it.
        """
        offsets = np.concatenate([[0], np.cumsum(self.level_counts)[:-1]]).astype(np.int64)
        out = np.zeros((sum(self.level_counts), self.k))
        for f, start in enumerate(offsets):
            out[start + self.levels[:, f], np.arange(self.k)] = 1.0
        return out

    @property
    def baseline(self) -> int:
        """Position of variant #1 (always servable per the contract), else 0."""
        return int(max(self.position([1])[0], 0))

"""Variant numbering (docs/api.md 2.1, 16.5)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from levered_server.engine.variants import Design, level_indexes, variant_number


def test_the_contract_vectors():
    counts = [3, 2]  # [Ship faster, Build better, Scale up] × [Get started, Try it free]
    assert variant_number([1, 1], counts).tolist() == [4]
    assert variant_number([2, 1], counts).tolist() == [6]
    assert variant_number([0, 0], counts).tolist() == [1]


def test_numbering_is_itertools_product_order():
    counts = [2, 3, 4]
    combos = list(itertools.product(*[range(n) for n in counts]))
    assert variant_number(combos, counts).tolist() == list(range(1, 25))
    assert level_indexes(np.arange(1, 25), counts).tolist() == [list(c) for c in combos]


def test_design_keeps_only_servable_variants_and_finds_them():
    design = Design.build([3, 2], servable=[1, 2, 3, 4, 5], names=["headline", "cta_text"])
    assert design.k == 5 and design.baseline == 0
    assert design.position([6, 4, 1]).tolist() == [-1, 3, 0]
    assert design.levels[3].tolist() == [1, 1]


def test_design_rejects_numbers_outside_the_product():
    with pytest.raises(ValueError):
        Design.build([2, 2], servable=[1, 5])

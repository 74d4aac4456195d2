"""Building sufficient statistics from the training query's rows."""

from __future__ import annotations

import numpy as np

from levered_server.engine.stats import CellStats, context_text


def row(variant, device, country, holdout=False, exposures=10, rewards=1):
    return {"variant_number": variant, "ctx_0": device, "ctx_1": country, "in_holdout": holdout,
            "exposures": exposures, "users": exposures, "reward_count": rewards,
            "reward_sum": rewards, "reward_sum_sq": rewards}


def test_rows_become_coded_cells_with_a_frequency_ordered_vocabulary():
    rows = [row(1, "mobile", "fr"), row(2, "desktop", None, exposures=50), row(1, "mobile", "de"),
            row(1, True, "fr", holdout=True)]
    stats = CellStats.from_rows(rows, ["device", "country"])
    assert stats.context_levels == (("desktop", "mobile", "true"), (None, "fr", "de"))
    assert stats.observations == 80 and stats.n_rows == 4
    assert stats.encode_context({"device": "mobile", "country": None}).tolist() == [1, 0]
    assert stats.encode_context({"device": "tv", "country": "fr"}).tolist() == [-1, 1]


def test_cells_beyond_the_vocabulary_cap_are_merged_and_sums_add_up():
    rows = [row(1, "mobile", c, exposures=10 + i) for i, c in enumerate(["a", "b", "c"])]
    stats = CellStats.from_rows(rows, ["device", "country"], max_levels=2)
    assert stats.context_levels[1] == ("c", "b")
    assert sorted(stats.context[:, 1].tolist()) == [-1, 0, 1]
    merged = CellStats.from_rows(rows, ["device", "country"], max_levels=0)
    assert merged.n_rows == 1 and merged.exposures.tolist() == [33.0]


def test_per_variant_sums_split_holdout_and_skip_unknown_numbers():
    stats = CellStats.build(np.array([1, 1, 2, 9]), None, np.array([True, False, False, False]),
                            {"exposures": [5, 7, 11, 13]})
    numbers = np.array([1, 2, 3])
    assert stats.per_variant(numbers, "exposures").tolist() == [12, 11, 0]
    assert stats.per_variant(numbers, "exposures", holdout=True).tolist() == [5, 0, 0]


def test_context_values_are_spelled_like_the_query():
    assert [context_text(v) for v in (True, False, "x", None, 3)] == ["true", "false", "x", None, "3"]


def test_context_cells_weigh_by_exposures():
    stats = CellStats.build(np.array([1, 2, 1]), np.array([[0], [0], [1]]), None,
                            {"exposures": [1, 2, 1]}, ("device",), (("a", "b"),))
    cells, weights = stats.context_cells()
    assert cells.tolist() == [[0], [1]] and weights.tolist() == [0.75, 0.25]


def test_a_json_round_trip_keeps_every_cell():
    import json
    stats = CellStats.from_rows([row(1, "mobile", "fr"), row(2, None, "de", holdout=True)],
                                ["device", "country"])
    again = CellStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again.context_levels == stats.context_levels
    assert np.array_equal(again.context, stats.context) and np.array_equal(again.in_holdout, stats.in_holdout)
    assert all(np.array_equal(again.sums[c], stats.sums[c]) for c in stats.sums)


def test_numpy_columns_with_masked_nulls_build_the_same_cells_as_rows():
    rows = [row(1, "mobile", "fr"), row(2, "desktop", None, exposures=50), row(1, "mobile", "de"),
            row(1, "true", "fr", holdout=True), row(3, None, "de", exposures=0, rewards=None)]
    names = ("variant_number", "in_holdout", "exposures", "users", "reward_count", "reward_sum",
             "reward_sum_sq", "ctx_0", "ctx_1")
    columns = {}
    for name in names:
        values = [r[name] for r in rows]
        null = [v is None for v in values]
        if name.startswith("ctx_"):
            columns[name] = np.ma.masked_array(np.array(values, dtype=object), mask=null)
        else:
            data = np.array([0 if v is None else v for v in values])
            columns[name] = np.ma.masked_array(data, mask=null) if any(null) else data
    got = CellStats.from_columns(columns, ["device", "country"])
    want = CellStats.from_rows(rows, ["device", "country"])
    assert got.context_levels == want.context_levels == (("desktop", "mobile", "true", None),
                                                         (None, "fr", "de"))
    assert np.array_equal(got.context, want.context) and np.array_equal(got.variant, want.variant)
    assert np.array_equal(got.in_holdout, want.in_holdout)
    assert all(np.array_equal(got.sums[c], want.sums[c]) for c in want.sums)
    empty = CellStats.from_columns({"variant_number": np.array([], np.int32),
                                    "ctx_0": np.array([], object)}, ["device"])
    assert empty.n_rows == 0 and empty.context_levels == ((),)

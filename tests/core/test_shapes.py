"""The optimization body, flat or nested, read as one flat object."""

from __future__ import annotations

from levered_core import shapes

NESTED = {"optimization": {"id": "o1", "name": "Hero", "reward_conversion_window": 24},
          "model_config": {"model_type": "cmab", "design_factors": [{"name": "headline", "levels": ["A"]}],
                           "context_factors": [{"name": "country"}], "reward": {"type": "bool"}},
          "meta": {"request_id": "req_abc123"}}


def test_a_nested_body_becomes_the_flat_object():
    assert shapes.optimization(NESTED) == {
        "id": "o1", "name": "Hero", "reward_conversion_window": 24, "model_type": "cmab",
        "training_data_config": {"design_factors": [{"name": "headline", "levels": ["A"]}],
                                 "context_factors": [{"name": "country"}], "reward": {"type": "bool"}}}


def test_a_flat_body_is_returned_as_it_is():
    flat = {"id": "o1", "model_type": "mab", "training_data_config": {}}
    assert shapes.optimization(flat) is flat


def test_anything_else_reads_as_an_empty_object():
    assert shapes.optimization(None) == {} and shapes.optimization([]) == {}
    assert shapes.optimization({"optimization": {"id": "o1"}, "model_config": None}) == {
        "id": "o1", "model_type": None, "training_data_config": {}}

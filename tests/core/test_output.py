"""Cells: the API's value for programs, a text for people; each formatter gets what it prints."""

from __future__ import annotations

from levered_core import humanize as h
from levered_core.output import Cell, cells_for, fields

OID = "699ede80-c94b-4f98-9c79-dd3e07748703"


def test_a_cell_keeps_the_value_and_shows_its_text():
    cell = Cell(OID, h.short_id)
    assert cell.machine_readable() == OID and cell.human_readable() == "699ede80"
    assert Cell(None, h.ago).human_readable() == "-"  # a missing field, whatever the humanizer
    assert Cell(None, none="pending").human_readable() == "pending"
    assert Cell(True, "yes").human_readable() == "yes" and Cell(None, "n/a").human_readable() == "n/a"
    assert Cell({"a": 1}).human_readable() == '{"a":1}'


def test_the_table_gets_texts_but_bare_numbers_stay_numbers_for_alignment():
    row = [Cell(OID, h.short_id), Cell(4100), Cell(0.5, h.fraction), Cell(True), Cell(None), "plain", {"k": [1]}, None]
    assert cells_for("table", row) == ["699ede80", 4100, "50.0%", "True", "-", "plain", '{"k":[1]}', "-"]


def test_json_and_yaml_get_the_values_objects_included():
    row = [Cell(OID, h.short_id), Cell({"country": "US"}, h.variant_label), Cell(None), {"k": 1}]
    assert cells_for("json", row) == cells_for("yaml", row) == [OID, {"country": "US"}, None, {"k": 1}]


def test_text_formats_get_the_values_with_objects_as_compact_json():
    row = [Cell(OID, h.short_id), Cell({"country": "US"}, h.variant_label), Cell(3), Cell(None)]
    for formatter in ("csv", "value", "shell", "someone-elses"):
        assert cells_for(formatter, row) == [OID, '{"country":"US"}', 3, None]


def test_cells_sort_by_value_with_missing_ones_first():
    cells = [Cell("2026-11-21T12:00:00Z", h.ago), Cell(None), Cell("2026-11-19T09:00:00Z", h.ago)]
    assert [c.machine_readable() for c in sorted(cells)] == [None, "2026-11-19T09:00:00Z", "2026-11-21T12:00:00Z"]
    assert not Cell(None) < Cell(None)


def test_fields_keep_the_values_as_received():
    assert fields({"id": OID, "meta": {"request_id": "req_abc123"}}) == (("id", "meta"), (OID, {"request_id": "req_abc123"}))
    assert fields([1, 2]) == (("value",), ([1, 2],))

"""Local input checks: JSON flags, factor specs, ID prefixes, bounded integers."""

from __future__ import annotations

import argparse

import pytest

from levered_core import inputs, output
from levered_core.errors import ExitCode, UsageError

IDS = [("699ede80-c94b-4f98-9c79-dd3e07748703", "Hero"), ("699e0000-0000-4000-8000-000000000000", "Pricing"),
       ("12345678-0000-4000-8000-000000000000", "Other")]


def test_json_flag_reads_inline_json_and_files(tmp_path):
    assert inputs.json_flag("--x", '[1, 2]', list) == [1, 2]
    path = tmp_path / "f.json"
    path.write_text('{"a": 1}')
    assert inputs.json_flag("--x", f"@{path}", dict) == {"a": 1}


def test_json_flag_errors_name_the_flag_position_and_file(tmp_path):
    with pytest.raises(UsageError, match=r"--x: invalid JSON at line 2, column 1"):
        inputs.json_flag("--x", '[1,\n]', list)
    path = tmp_path / "bad.json"
    path.write_text("{")
    with pytest.raises(UsageError, match=rf"invalid JSON in {path} at line 1"):
        inputs.json_flag("--x", f"@{path}", dict)
    with pytest.raises(UsageError, match="--x must be a JSON object, got a number"):
        inputs.json_flag("--x", "3", dict)


def test_factor_specs_name_the_missing_key():
    with pytest.raises(UsageError, match=r'--f\[1\] \(b\) is missing "levels"'):
        inputs.factor_specs("--f", [{"name": "a", "levels": [1, 2]}, {"name": "b"}], levels_required=True)
    assert inputs.factor_specs("--f", [{"name": "country"}], levels_required=False) == [{"name": "country"}]
    with pytest.raises(UsageError, match=r"--f\[0\].levels must be an array"):
        inputs.factor_specs("--f", [{"name": "a", "levels": "ab"}], levels_required=True)


def test_resolve_id_accepts_full_ids_without_listing():
    def boom():
        raise AssertionError("listed")
    assert inputs.resolve_id("699EDE80-C94B-4F98-9C79-DD3E07748703", "optimization", boom) == IDS[0][0]


def test_resolve_id_by_unique_prefix_and_its_errors():
    assert inputs.resolve_id("1234", "optimization", lambda: IDS) == IDS[2][0]
    with pytest.raises(UsageError, match="'699e' matches 2 optimizations: .*Hero.*Pricing"):
        inputs.resolve_id("699e", "optimization", lambda: IDS)
    with pytest.raises(inputs.NoMatch) as missing:
        inputs.resolve_id("abcd", "optimization", lambda: IDS)
    assert missing.value.exit_code == ExitCode.NOT_FOUND


@pytest.mark.parametrize("value,kind,article", [("not-an-id", "optimization", "an"), ("Landing Page Hero", "metric", "a"),
                                                ("lvk_7Hq2Xw9P", "API key", "an")])
def test_resolve_id_refuses_what_cannot_be_an_id_without_listing(value, kind, article):
    def boom():
        raise AssertionError("listed")
    with pytest.raises(UsageError) as refused:
        inputs.resolve_id(value, kind, boom)
    assert refused.value.exit_code == ExitCode.USAGE
    assert str(refused.value) == (f"{value!r} is not {article} {kind} ID (IDs are UUIDs): give the full ID or at least "
                                  "its first 4 characters, as the ID column of the `list` command shows them")


@pytest.mark.parametrize("value", ["869", "ab", "", " 1 "])
def test_resolve_id_refuses_prefixes_shorter_than_4_characters_without_listing(value):
    def boom():
        raise AssertionError("listed")
    with pytest.raises(UsageError) as short:
        inputs.resolve_id(value, "optimization", boom)
    assert short.value.exit_code == ExitCode.USAGE
    assert str(short.value) == (f"optimization ID {value.strip()!r} is too short: give at least 4 characters of the ID "
                                "(or the full UUID)")


def test_result_set_shows_null_as_a_dash_like_other_tables_and_objects_as_json():
    body = {"columns": [{"name": "a", "type": "VARCHAR"}, {"name": "b", "type": "INTEGER"}, {"name": "c", "type": "JSON"}],
            "rows": [{"a": None, "b": 0, "c": {"plan": "pro"}}, {"a": "x", "b": None, "c": [1, "é"]}]}
    columns, rows = inputs.result_set(body)
    assert columns == ("a", "b", "c")
    assert [output.cells_for("table", row) for row in rows] == [["-", 0, '{"plan":"pro"}'], ["x", "-", '[1,"é"]']]
    assert [output.cells_for("json", row) for row in rows] == [[None, 0, {"plan": "pro"}], ["x", None, [1, "é"]]]


def test_an_empty_result_set_body_is_no_columns_and_no_rows():
    assert inputs.result_set({"meta": {}}) == ((), [])


def test_bounded_int_is_an_argparse_type():
    parse = inputs.bounded_int(1, 100)
    assert parse("7") == 7
    for bad in ("0", "101", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)

"""``-f json|yaml|csv|value`` print the API's values; the readable table keeps its humanized cells.

As in python-openstackclient: IDs whole, timestamps as the API sent them, numbers as numbers,
objects as objects in JSON and YAML (compact JSON in csv and value), missing fields as null.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml

from tests.hosted_api import NESTED, OID, OID2, OPTIMIZATIONS, hosted_api, run_many

API_KEY = "lvk_" + "k" * 43
LIST = ("optimizations", "list")
SHOW = ("optimizations", "show", OID)
OBSERVATIONS = ("optimizations", "observations", OID)
#: What `optimizations list` prints for its two items, column by column, in machine formats.
ROWS = [
    {"ID": OID, "Name": "Landing Page Hero", "Status": "live", "Type": None, "Model": "trained", "Lift": 8.2,
     "Confidence": 0.91, "Exposures": 4100, "Updated": "2026-11-21T12:00:00Z"},
    {"ID": OID2, "Name": "Pricing page", "Status": "completed", "Type": None, "Model": "untrained", "Lift": None,
     "Confidence": None, "Exposures": None, "Updated": "2026-11-19T09:00:00Z"},
]
OBSERVED = {"observations": [
    {"exposure_id": "b7c0e1d2-3f4a-4b5c-8d6e-7f8091a2b3c4", "anonymous_id": "user-42",
     "variant": {"headline": "Build better"}, "variant_number": 3, "context": {"country": "US"}, "in_holdout": False,
     "propensity": 0.6172, "exposed_at": "2026-11-21T11:58:02.417Z", "reward": None, "rewarded_at": None},
], "page": 1, "size": 20, "total": 1, "meta": {"request_id": "req_abc123", "organization_id": "org_xyz"}}


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """Map each command line below to its run against the hosted-shapes server."""
    lines = [(*LIST, "-f", "json"), (*LIST, "-f", "yaml"), (*LIST, "-f", "csv"), (*LIST, "-f", "value"),
             (*LIST, "-f", "value", "-c", "ID", "-c", "Updated"), LIST,
             (*LIST, "-f", "json", "--sort-column", "Updated"), (*LIST, "-f", "value", "-c", "Lift", "--sort-column", "Lift"),
             (*SHOW, "-f", "json"), (*SHOW, "-f", "yaml"), (*SHOW, "-f", "value"), (*SHOW, "-f", "value", "-c", "meta"),
             (*SHOW, "-f", "shell", "-c", "meta"), (*SHOW, "-f", "table"),
             (*OBSERVATIONS, "-f", "json"), (*OBSERVATIONS, "-f", "csv"), OBSERVATIONS]
    with hosted_api() as api:
        api.routes["GET", f"/api/v2/optimizations/{OID}/observations"] = [(200, OBSERVED, {})]
        env = {"LEVERED_API_URL": api.url, "LEVERED_API_KEY": API_KEY,
               "LEVERED_HOME": str(tmp_path_factory.mktemp("home"))}
        runs = {run.args: run for run in run_many(lines, env)}
    for run in runs.values():
        assert run.exit_code == 0 and "Traceback" not in run.stderr, (run.args, run.stderr)
    return runs


def test_list_json_prints_the_api_values(printed):
    assert printed[(*LIST, "-f", "json")].json == ROWS


def test_list_yaml_prints_the_same_values(printed):
    assert yaml.safe_load(printed[(*LIST, "-f", "yaml")].stdout) == ROWS


def test_list_csv_prints_whole_ids_iso_times_and_plain_numbers(printed):
    table = list(csv.reader(io.StringIO(printed[(*LIST, "-f", "csv")].stdout)))
    assert table[0] == list(ROWS[0])
    assert table[1] == [OID, "Landing Page Hero", "live", "", "trained", "8.2", "0.91", "4100", "2026-11-21T12:00:00Z"]
    assert table[2][:2] == [OID2, "Pricing page"] and table[2][5:8] == ["", "", ""]


def test_list_value_prints_one_line_of_values_per_row(printed):
    assert printed[(*LIST, "-f", "value", "-c", "ID", "-c", "Updated")].stdout == (
        f"{OID} 2026-11-21T12:00:00Z\n{OID2} 2026-11-19T09:00:00Z\n")
    assert printed[(*LIST, "-f", "value")].stdout.splitlines()[0] == (
        f"{OID} Landing Page Hero live None trained 8.2 0.91 4100 2026-11-21T12:00:00Z")


def test_the_table_keeps_its_humanized_cells(printed):
    rows = [line for line in printed[LIST].stdout.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| 699ede80 | Landing Page Hero | live      | -    | trained   | +8.2% | 91%        |")
    assert rows[1].rstrip(" |").endswith(" ago") and OID not in printed[LIST].stdout


def test_sorting_compares_the_api_values(printed):
    assert [row["ID"] for row in printed[(*LIST, "-f", "json", "--sort-column", "Updated")].json] == [OID2, OID]
    assert printed[(*LIST, "-f", "value", "-c", "Lift", "--sort-column", "Lift")].stdout == "None\n8.2\n"  # missing first


def test_show_json_and_yaml_print_objects_as_objects(printed):
    assert printed[(*SHOW, "-f", "json")].json == NESTED
    assert yaml.safe_load(printed[(*SHOW, "-f", "yaml")].stdout) == NESTED


def test_show_value_and_shell_print_objects_as_compact_json(printed):
    meta = '{"request_id":"req_abc123","organization_id":"org_xyz"}'
    assert printed[(*SHOW, "-f", "value", "-c", "meta")].stdout == meta + "\n"
    assert [json.loads(line) for line in printed[(*SHOW, "-f", "value")].stdout.splitlines()] == list(NESTED.values())
    assert printed[(*SHOW, "-f", "shell", "-c", "meta")].stdout == 'meta="{\\"request_id\\":\\"req_abc123\\",' \
        '\\"organization_id\\":\\"org_xyz\\"}"\n'
    table = printed[(*SHOW, "-f", "table")].stdout.splitlines()
    assert any(line.startswith("| meta ") and f"| {meta} " in line for line in table), table


def test_nested_values_of_a_list_stay_objects_in_json_and_compact_in_csv(printed):
    assert printed[(*OBSERVATIONS, "-f", "json")].json == [{
        "Exposed": "2026-11-21T11:58:02.417Z", "Anonymous ID": "user-42", "Variant": 3, "Holdout": False,
        "Propensity": 0.6172, "Reward": None, "Context": {"country": "US"}}]
    row = list(csv.reader(io.StringIO(printed[(*OBSERVATIONS, "-f", "csv")].stdout)))[1]
    assert row == ["2026-11-21T11:58:02.417Z", "user-42", "3", "False", "0.6172", "", '{"country":"US"}']
    table = printed[OBSERVATIONS].stdout
    assert "| #3      | no      | 0.617      | pending | country=US |" in table
    assert OPTIMIZATIONS["optimizations"][0]["id"] not in table

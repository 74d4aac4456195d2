"""``warehouse``, ``metrics`` and ``models`` end to end: the installed CLI against a real server."""

from __future__ import annotations

import json
import re

import pytest

SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup' AND timestamp_utc >= @start_date"
FACTORS = [{"name": "headline", "levels": ["A", "B"]}]
COUNT = "SELECT name, count(*) AS n FROM rewards GROUP BY name ORDER BY name"


def ok(run):
    assert run.exit_code == 0, f"exit {run.exit_code}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    return run


@pytest.fixture(scope="module")
def rewards(server):
    """Five rewards in the managed warehouse: three sign-ups and two purchases, one with properties."""
    events = [{"anonymous_id": f"user-{i}", "name": "signup" if i < 3 else "purchase", "value": i + 1}
              for i in range(5)]
    events[1]["properties"] = {"plan": "pro"}
    status, body = server.api("POST", "/api/v2/ingest/rewards", {"events": events})
    assert status == 200 and body["accepted"] == 5, body
    return events


def new_metric(server, name):
    status, body = server.api("POST", "/api/v2/warehouse/metrics", {
        "name": name, "sql": SQL, "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
    assert status == 201, body
    return body


def new_optimization(server, name):
    metric = new_metric(server, f"{name} metric")
    status, body = server.api("POST", "/api/v2/optimizations", {
        "name": name, "reward_metric_id": metric["id"], "training_data_config": {"design_factors": FACTORS}})
    assert status == 201, body
    return body


def table_rows(stdout):
    """The cells of a cliff table, header first."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("|")]


def test_warehouse_status(levered):
    text = ok(levered("warehouse", "status")).stdout
    assert re.search(r"^Provider +duckdb \(managed\)$", text, re.M) and re.search(r"^Status +connected \(", text, re.M)
    body = ok(levered("warehouse", "status", "--json")).json
    assert body["provider"] == "duckdb" and body["connected"] is True and body["managed"] is True


def test_warehouse_connection_names_provider_and_driver(levered):
    text = ok(levered("warehouse", "connection")).stdout
    assert re.search(r"^Provider +duckdb \(managed\)$", text, re.M)
    assert re.search(r"^Driver +duckdb \S+$", text, re.M)  # our server names its driver
    body = ok(levered("warehouse", "connection", "--json")).json
    conn = body["connection"]
    assert conn["provider"] == "duckdb" and conn["managed"] is True and conn["driver"] == "duckdb"
    assert "credentials" not in conn


def test_warehouse_tables(levered, rewards):
    rows = table_rows(ok(levered("warehouse", "tables")).stdout)
    assert rows[0] == ["Name", "Type", "Rows"] and ["rewards", "table", "5"] in rows
    tables = {t["name"]: t for t in ok(levered("warehouse", "tables", "--json")).json["tables"]}
    assert {"exposures", "rewards"} <= set(tables) and tables["rewards"]["row_count"] == 5


def test_warehouse_columns(levered):
    rows = table_rows(ok(levered("warehouse", "columns", "rewards")).stdout)
    assert rows[0] == ["Name", "Type", "Nullable"] and ["anonymous_id", "VARCHAR", "yes"] in rows
    body = ok(levered("warehouse", "columns", "rewards", "--json")).json
    assert body["table"] == "rewards" and "timestamp_utc" in [c["name"] for c in body["columns"]]


def test_warehouse_preview_shows_null_as_a_dash_and_json_keeps_null(levered, rewards):
    run = ok(levered("warehouse", "preview", "rewards", "-n", "5", "-c", "anonymous_id", "-c", "properties"))
    rows = dict(table_rows(run.stdout))
    assert rows["anonymous_id"] == "properties" and rows["user-0"] == "-", run.stdout
    assert rows["user-1"] == '{"plan":"pro"}' and "None" not in run.stdout
    body = ok(levered("warehouse", "preview", "rewards", "-n", "5", "--json")).json
    properties = {r["anonymous_id"]: r["properties"] for r in body["rows"]}
    assert body["row_count"] == 5 and properties["user-0"] is None and properties["user-1"] == {"plan": "pro"}
    machine = ok(levered("warehouse", "preview", "rewards", "-n", "5", "-f", "json", "-c", "anonymous_id",
                         "-c", "properties")).json  # -f json: the values, null and objects as they are
    assert {r["anonymous_id"]: r["properties"] for r in machine} == properties


def test_warehouse_preview_says_when_rows_were_left_out(levered, rewards):
    run = ok(levered("warehouse", "preview", "rewards", "-n", "2", "-c", "anonymous_id"))
    assert len(table_rows(run.stdout)) == 3
    assert run.stderr == "(showing the first 2 rows; more exist: raise -n)\n"


@pytest.mark.parametrize("how", ["argument", "--sql", "stdin", "file"])
def test_warehouse_query_reads_the_sql_from_anywhere(levered, rewards, tmp_path, how):
    path = tmp_path / "count.sql"
    path.write_text(COUNT + "\n")
    args, stdin = {"argument": ([COUNT], None), "--sql": (["--sql", COUNT], None), "stdin": (["-"], COUNT),
                   "file": ([f"@{path}"], None)}[how]
    run = ok(levered("warehouse", "query", *args, input=stdin))
    assert table_rows(run.stdout) == [["name", "n"], ["purchase", "2"], ["signup", "3"]], run.stdout
    body = ok(levered("warehouse", "query", *args, "--json", input=stdin)).json
    assert body["rows"] == [{"name": "purchase", "n": 2}, {"name": "signup", "n": 3}]
    assert [c["name"] for c in body["columns"]] == ["name", "n"] and body["truncated"] is False


def test_warehouse_query_null_is_a_dash_for_people_and_null_in_json(levered):
    run = ok(levered("warehouse", "query", "SELECT 1 AS a, NULL AS b"))
    assert table_rows(run.stdout) == [["a", "b"], ["1", "-"]]
    assert ok(levered("warehouse", "query", "SELECT 1 AS a, NULL AS b", "--json")).json["rows"] == [{"a": 1, "b": None}]


def test_warehouse_query_truncation_note_is_on_stderr_only(levered, rewards):
    run = ok(levered("warehouse", "query", "SELECT anonymous_id FROM rewards", "-n", "2"))
    assert len(table_rows(run.stdout)) == 3 and "more exist: raise -n" in run.stderr
    body = ok(levered("warehouse", "query", "SELECT anonymous_id FROM rewards", "-n", "2", "--json")).json
    assert body["truncated"] is True and body["row_count"] == 2


def test_metrics_preview(levered, server, rewards):
    metric = new_metric(server, "Preview sign-ups")
    rows = table_rows(ok(levered("metrics", "preview", metric["id"][:8], "--limit", "10")).stdout)
    assert rows[0] == ["anonymous_id", "timestamp_utc"]
    assert sorted(row[0] for row in rows[1:]) == ["user-0", "user-1", "user-2"]
    body = ok(levered("metrics", "preview", metric["id"], "--limit", "2", "--json")).json
    assert body["metric_id"] == metric["id"] and body["row_count"] == 2 and len(body["rows"]) == 2


@pytest.mark.parametrize("mode", ["table", "json"])
def test_metrics_delete_with_yes(levered, server, mode):
    metric = new_metric(server, f"Doomed {mode}")
    run = ok(levered("metrics", "delete", metric["id"][:8], "-y", *(["--json"] if mode == "json" else [])))
    if mode == "json":
        assert run.json["id"] == metric["id"] and run.json["deleted"] is True
    else:
        assert run.stdout == f"Deleted metric {metric['id']}\n"
    assert metric["id"] not in json.dumps(ok(levered("metrics", "list", "--json")).json)
    assert server.api("GET", f"/api/v2/warehouse/metrics/{metric['id']}")[0] == 404


def test_models_list(levered, server):
    opt = new_optimization(server, "Listed")
    rows = table_rows(ok(levered("models", "list")).stdout)
    assert rows[0] == ["ID", "Optimization", "Type", "Status", "Version", "Trained", "Last run", "Updated"]
    assert [opt["model_id"][:8], opt["id"][:8], "cmab", "untrained", "0", "-", "-"] in [r[:7] for r in rows]
    listed = {m["id"]: m for m in ok(levered("models", "list", "--json")).json["models"]}
    assert listed[opt["model_id"]]["optimization_id"] == opt["id"] and listed[opt["model_id"]]["version"] == 0


def test_an_untrained_model_state_says_how_to_train_it(levered, server):
    opt = new_optimization(server, "Untrained")
    text = ok(levered("models", "state", opt["model_id"][:8])).stdout
    assert f"Version       none: not trained yet; train it with `levered models train {opt['model_id'][:8]}`" in text
    assert "trained -" not in text
    assert ok(levered("models", "state", opt["model_id"], "--json")).json["version"] == 0


@pytest.mark.parametrize("mode", ["table", "json"])
def test_models_delete_with_yes(levered, server, mode):
    opt = new_optimization(server, f"Model to delete ({mode})")
    run = ok(levered("models", "delete", opt["model_id"][:8], "-y", *(["--json"] if mode == "json" else [])))
    if mode == "json":
        assert run.json["id"] == opt["model_id"] and run.json["deleted"] is True
    else:
        assert run.stdout == f"Deleted model {opt['model_id']}\n"
    listed = ok(levered("models", "list", "--limit", "100", "--json")).json["models"]
    assert opt["model_id"] not in [m["id"] for m in listed]
    assert server.api("GET", f"/api/v2/models/{opt['model_id']}")[0] == 404
    assert server.api("GET", f"/api/v2/optimizations/{opt['id']}")[1]["model_status"] is None

"""``levered dashboard --once``: one round, one plain-text frame, errors in one line."""

from __future__ import annotations

from levered_core.testing import run_cli


def test_once_prints_the_list_as_plain_text(levered, server):
    run = levered("dashboard", "--once")
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "Levered dashboard · optimizations"
    assert lines[2].split()[:3] == ["Optimization", "Status", "Var"]
    assert any(line.startswith("Landing page hero") and " live " in line for line in lines)
    assert any(line.startswith("Pricing page CTA") for line in lines)
    assert lines[-1].startswith("updated 0s ago · every 10s · 2 optimizations")
    assert "\x1b" not in run.stdout and run.stderr == ""
    assert max(len(line) for line in lines) <= 100


def test_once_with_an_id_prefix_prints_the_detail(levered, server):
    opt = server.ids["Pricing page CTA"]
    run = levered("dashboard", opt["id"][:8], "--once", "--refresh", "5")
    assert run.exit_code == 0, run.stderr
    text = run.stdout
    assert text.startswith(f"Pricing page CTA · live · mab · {opt['id'][:8]} · holdout 10%")
    for title in ("Allocation", "Reward rate", "Lift", "Factor importance", "Over time", "Model"):
        assert f"── {title} " in text
    assert "#1 Start free trial" in text and "#2 See plans" in text
    assert f"Model        {opt['model_id'][:8]} (mab, untrained)" in text
    assert "every 5s" in text and "\x1b" not in text


def test_once_against_a_stopped_server_fails_in_one_line(tmp_path):
    run = run_cli("dashboard", "--once", home=tmp_path, env={
        "LEVERED_API_URL": "http://127.0.0.1:9", "LEVERED_API_KEY": "lvk_x",
        "LEVERED_SITE_CONFIG": str(tmp_path / "none.json")})
    assert run.exit_code == 1 and run.stdout == ""
    assert run.stderr.startswith("Error: cannot reach http://127.0.0.1:9") and "Traceback" not in run.stderr


def test_once_with_a_refused_key_says_not_authenticated(levered):
    run = levered("dashboard", "--once", env={"LEVERED_API_KEY": "lvk_" + "x" * 43})
    assert run.exit_code == 3 and "Not authenticated" in run.stderr and "Traceback" not in run.stderr

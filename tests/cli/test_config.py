"""``levered config``: round trips, validation, permissions, corrupt files, precedence."""

from __future__ import annotations

import json
import stat


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_defaults_before_any_file_exists(cli, home):
    run = cli("config", "list", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json == {"environment": "prod", "api_url": "https://api.levered.dev", "output": "table",
                        "timeout": 30, "ca_bundle": None}
    assert not (home / "config.json").exists()


def test_set_get_list_round_trip(cli, home):
    assert cli("config", "set", "environment", "local").stdout == "environment = local\n"
    assert cli("config", "set", "timeout", "12.5", "--json").json == {"timeout": 12.5}
    assert cli("config", "get", "environment").stdout == "local\n"
    assert cli("config", "get", "timeout", "--json").json == {"timeout": 12.5}
    listing = cli("config", "list")
    assert "| environment | local" in listing.stdout and "| user " in listing.stdout
    assert json.loads((home / "config.json").read_text()) == {"environment": "local", "timeout": 12.5}


def test_config_file_is_private(cli, home):
    cli("config", "set", "output", "json")
    assert mode(home / "config.json") == 0o600
    assert mode(home) == 0o700
    leftovers = [p.name for p in home.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_empty_value_removes_the_key(cli, home):
    cli("config", "set", "api_url", "http://127.0.0.1:3100")
    run = cli("config", "set", "api_url", "", "--json")
    assert run.json == {"api_url": "https://api.levered.dev"}  # the environment's default is in force again
    assert "api_url" not in json.loads((home / "config.json").read_text())


def test_unknown_key_is_refused_with_the_known_ones(cli, home):
    for args in (("set", "colour", "red"), ("get", "colour")):
        run = cli("config", *args)
        assert run.exit_code == 2
        assert run.stderr == ("Error: unknown configuration key 'colour'; known keys: environment, api_url, "
                              "output, timeout, ca_bundle\n")
    assert not (home / "config.json").exists()


def test_invalid_values_change_nothing(cli, home):
    cli("config", "set", "environment", "testing")
    before = (home / "config.json").read_bytes()
    for key, value, words in (("environment", "staging", "prod, testing, local"),
                              ("api_url", "ftp://example.com", "http"),
                              ("output", "xml", "table, json"),
                              ("timeout", "0", "between 1 and 600"),
                              ("timeout", "soon", "number"),
                              ("ca_bundle", "/no/such/file.pem", "no such file")):
        run = cli("config", "set", key, value)
        assert run.exit_code == 2, (key, value)
        assert words in run.stderr and "Traceback" not in run.stderr
    assert (home / "config.json").read_bytes() == before


def test_unknown_keys_already_in_the_file_are_kept(cli, home):
    home.mkdir()
    (home / "config.json").write_text('{"future_key": [1, 2], "output": "json"}')
    cli("config", "set", "output", "table")
    assert json.loads((home / "config.json").read_text()) == {"future_key": [1, 2], "output": "table"}


def test_corrupt_file_names_the_file_and_never_shows_a_traceback(cli, home):
    home.mkdir()
    (home / "config.json").write_text('{"environment": "local",,}')
    run = cli("config", "list")
    assert run.exit_code == 2  # found locally, fixed locally
    assert str(home / "config.json") in run.stderr
    assert "not valid JSON" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    (home / "config.json").write_text("[1, 2]")
    run = cli("config", "get", "output")
    assert run.exit_code == 2 and "must hold a JSON object" in run.stderr


def test_output_json_setting_makes_json_the_default(cli):
    cli("config", "set", "output", "json")
    assert cli("config", "get", "output").json == {"output": "json"}
    run = cli("config", "list", "-f", "value", "-c", "key")
    assert run.stdout.split() == ["environment", "api_url", "output", "timeout", "ca_bundle"]


def test_levered_env_wins_over_the_file_and_is_validated(cli):
    cli("config", "set", "environment", "testing")
    run = cli("config", "list", "--json", env={"LEVERED_ENV": "local"})
    assert run.json["environment"] == "local"
    run = cli("config", "list", env={"LEVERED_ENV": "staging"})
    assert run.exit_code == 2
    assert "LEVERED_ENV is 'staging'" in run.stderr


def test_site_config_is_below_the_user_file(cli, tmp_path):
    (tmp_path / "site-config.json").write_text('{"api_url": "https://levered.internal", "timeout": 60}')
    run = cli("config", "list", "-f", "json")
    rows = {row["Key"]: row for row in run.json}
    assert rows["api_url"]["Value"] == "https://levered.internal" and rows["api_url"]["Source"] == "site"
    cli("config", "set", "timeout", "5")
    assert cli("config", "get", "timeout").stdout == "5\n"


def test_api_url_shows_the_url_in_force_and_where_it_comes_from(cli):
    assert cli("config", "get", "api_url").stdout == "https://api.levered.dev\n"
    rows = {row["Key"]: row for row in cli("config", "list", "-f", "json").json}
    assert (rows["api_url"]["Value"], rows["api_url"]["Source"]) == ("https://api.levered.dev", "default")
    cli("config", "set", "environment", "local")
    assert cli("config", "get", "api_url").stdout == "http://localhost:3100\n"
    rows = {row["Key"]: row for row in cli("config", "list", "-f", "json",
                                           env={"LEVERED_API_URL": "http://127.0.0.1:3301/"}).json}
    assert (rows["api_url"]["Value"], rows["api_url"]["Source"]) == ("http://127.0.0.1:3301", "env LEVERED_API_URL")
    cli("config", "set", "api_url", "https://levered.example.com")
    rows = {row["Key"]: row for row in cli("config", "list", "-f", "json").json}
    assert (rows["api_url"]["Value"], rows["api_url"]["Source"]) == ("https://levered.example.com", "user")


def test_file_that_is_not_utf8_is_a_clean_error(cli, home, tmp_path):
    home.mkdir()
    (home / "config.json").write_bytes(b'{"output": "caf\xe9"}')
    run = cli("config", "get", "output")
    assert run.exit_code == 2
    assert run.stderr == f"Error: {home / 'config.json'} is not UTF-8 text (byte 15): fix or delete the file\n"
    (home / "config.json").unlink()
    (tmp_path / "site-config.json").write_bytes(b"\xff\xfe{}")
    run = cli("config", "list")
    assert run.exit_code == 2 and str(tmp_path / "site-config.json") in run.stderr
    assert "not UTF-8" in run.stderr and "Traceback" not in run.stderr and "unexpected" not in run.stderr


def test_site_plugin_lists_must_be_lists(cli, tmp_path):
    site = tmp_path / "site-config.json"
    for key, value in (("allow", '"levered-config"'), ("deny", '"auth"'), ("override", '"x"')):
        site.write_text(f'{{"plugins": {{"{key}": {value}}}}}')
        for args in (("config", "list"), ("--help",)):
            run = cli(*args)
            assert run.exit_code == 2, (key, args)
            assert run.stderr.startswith(f'Error: cannot list installed plugins: {site}: "plugins"."{key}" must')
            assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1


def test_unknown_column_of_a_lister_is_a_usage_error(cli):
    for columns in (("-c", "Nope"), ("-c", "key", "-c", "nope")):
        run = cli("config", "list", *columns)
        assert run.exit_code == 2, columns
        assert run.stderr.startswith("Error: unknown column '")
        assert run.stderr.endswith("'; columns: Key, Value, Source\n") and "Traceback" not in run.stderr

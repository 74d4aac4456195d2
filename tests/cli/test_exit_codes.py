"""Errors end to end: a plugin command calling a real HTTP server through the core client."""

from __future__ import annotations

import pytest

from tests.stub_api import envelope_error

WHOAMI = """
    from levered_core.plugin_api import CommandGroup, ShowOne, Command, Result
    GROUP = CommandGroup("probe", "Probe the API", api_version=1)

    class Me(ShowOne):
        '''Show the caller'''
        def take_action(self, parsed_args):
            me = self.client.get("/api/v2/me")
            return Result(("Email", "Organization"), (me["user"]["email"], me["organization"]["name"]), me)

    class Interrupt(Command):
        '''Pretend the user pressed Ctrl-C'''
        def take_action(self, parsed_args):
            raise KeyboardInterrupt
"""
ME = {"user": {"email": "ada@example.com"}, "organization": {"name": "Acme"},
      "meta": {"request_id": "req_aaaaaaaaaaaaaaaaaaaaaaaa", "organization_id": "org"}}
KEY = "lvk_" + "k" * 43


@pytest.fixture
def probe(cli, install_plugin, stub_api):
    install_plugin("levered-probe", """
        [levered.groups.v1]
        probe = levered_probe:GROUP
        [levered.commands.v1]
        probe me = levered_probe:Me
        probe interrupt = levered_probe:Interrupt
        """, {"levered_probe/__init__.py": WHOAMI})

    def run(*args, key=KEY, env=None):
        base = {"LEVERED_API_URL": stub_api.url}
        if key:
            base["LEVERED_API_KEY"] = key
        return cli("probe", *args, env={**base, **(env or {})})

    return run


def test_success_prints_a_table_or_the_api_object(probe, stub_api):
    stub_api.add("GET", "/api/v2/me", 200, ME)
    run = probe("me")
    assert run.exit_code == 0, run.stderr
    assert "ada@example.com" in run.stdout and "Acme" in run.stdout
    assert probe("me", "--json").json == ME
    request = stub_api.requests[0]
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert request["headers"]["User-Agent"].startswith("levered-cli/0.1.0 python/3.")


def test_not_found_exits_4_with_the_server_message(probe, stub_api):
    stub_api.add("GET", "/api/v2/me", 404, envelope_error("not_found", "Optimization not found."))
    run = probe("me")
    assert run.exit_code == 4
    assert run.stderr == "Error: Optimization not found. (not_found, req_0123456789abcdef01234567)\n"


def test_unauthorized_exits_3(probe, stub_api):
    stub_api.add("GET", "/api/v2/me", 401, envelope_error("unauthorized", "Not authenticated"))
    run = probe("me")  # with an API key: the key is to blame, and a login is the other way in
    assert run.exit_code == 3
    assert run.stderr.startswith("Error: Not authenticated: the API key in LEVERED_API_KEY was refused "
                                 "(invalid or revoked); create a new key, or unset it and run `levered login`")


def test_no_credential_exits_3_naming_the_url_before_sending_anything(probe, stub_api):
    run = probe("me", key=None)
    assert run.exit_code == 3
    assert run.stderr == (f"Error: Not authenticated: no session for {stub_api.url}; run `levered login` "
                          "or set LEVERED_API_KEY\n")
    flag = probe("me", "--api-url", "http://127.0.0.1:9/", key=None)  # the flag's URL: login needs it too
    assert flag.exit_code == 3
    assert flag.stderr == ("Error: Not authenticated: no session for http://127.0.0.1:9; run "
                           "`levered login --api-url http://127.0.0.1:9` or set LEVERED_API_KEY\n")
    assert stub_api.requests == []


def test_server_error_exits_1_and_json_mode_prints_the_envelope(probe, stub_api):
    body = envelope_error("warehouse_error", "The warehouse timed out.")
    stub_api.add("GET", "/api/v2/me", 502, body)
    run = probe("me", "--json")
    assert run.exit_code == 1
    assert run.json == body
    assert run.stderr == "Error: The warehouse timed out. (warehouse_error, req_0123456789abcdef01234567)\n"


def test_unreachable_server_names_the_url(probe):
    run = probe("me", env={"LEVERED_API_URL": "http://127.0.0.1:9"})
    assert run.exit_code == 1
    assert run.stderr.startswith("Error: cannot reach http://127.0.0.1:9: connection refused")
    assert "Traceback" not in run.stderr


def test_debug_logs_requests_and_tracebacks_but_never_the_key(probe, stub_api):
    stub_api.add("GET", "/api/v2/me", 500, envelope_error("internal", "Boom."), {"X-Request-Id": "req_x"})
    run = probe("--debug", "me")
    assert run.exit_code == 1
    assert "GET " in run.stderr and "/api/v2/me -> 500 (req_x" in run.stderr
    assert "Traceback (most recent call last)" in run.stderr
    assert KEY not in run.stderr and KEY not in run.stdout


def test_interrupt_exits_130(probe):
    assert probe("interrupt").exit_code == 130


def test_api_url_flag_wins_over_the_environment(probe, stub_api):
    stub_api.add("GET", "/api/v2/me", 200, ME)
    run = probe("me", "--api-url", stub_api.url, env={"LEVERED_API_URL": "http://127.0.0.1:9"})
    assert run.exit_code == 0, run.stderr


def test_a_422_lists_each_invalid_field_for_people_and_the_envelope_for_programs(probe, stub_api):
    fields = [{"field": "training_data_config.design_factors[1].levels", "code": "too_short",
               "message": "a factor needs at least 2 levels"},
              {"field": "holdout_percentage", "code": "out_of_range", "message": "must be between 0 and 50"}]
    body = envelope_error("validation_error", "2 fields are invalid")
    body["error"]["details"] = {"fields": fields}
    stub_api.add("GET", "/api/v2/me", 422, body)
    run = probe("me")
    assert run.exit_code == 1
    assert run.stderr == ("Error: 2 fields are invalid (validation_error, req_0123456789abcdef01234567)\n"
                          "  training_data_config.design_factors[1].levels: a factor needs at least 2 levels (too_short)\n"
                          "  holdout_percentage: must be between 0 and 50 (out_of_range)\n")
    as_json = probe("me", "--json")
    assert as_json.json == body and as_json.stderr == run.stderr


def test_one_field_is_one_line_and_warehouse_details_follow_the_message(probe, stub_api):
    one = envelope_error("validation_error", "name: must not be empty")
    one["error"]["details"] = {"fields": [{"field": "name", "code": "too_short", "message": "must not be empty"}]}
    sql = envelope_error("invalid_metric_sql", "The metric SQL does not return the mapped column(s) ts.")
    sql["error"]["details"] = {"provider": "duckdb", "warehouse_message": None, "missing_columns": ["ts"],
                               "available_columns": ["anonymous_id", "timestamp_utc"]}
    rejected = envelope_error("invalid_sql", "The warehouse rejected the query.")
    rejected["error"]["details"] = {"provider": "duckdb", "warehouse_message": "Catalog Error: no table signups\n"
                                                                             "Did you mean \"rewards\"?"}
    stub_api.add("GET", "/api/v2/me", 422, one)
    stub_api.add("GET", "/api/v2/me", 422, sql)
    stub_api.add("GET", "/api/v2/me", 422, rejected)
    assert probe("me").stderr == "Error: name: must not be empty (validation_error, req_0123456789abcdef01234567)\n"
    assert probe("me").stderr.endswith("(invalid_metric_sql, req_0123456789abcdef01234567)\n"
                                       "  available columns: anonymous_id, timestamp_utc\n")
    assert probe("me").stderr.endswith("(invalid_sql, req_0123456789abcdef01234567)\n"
                                       "  warehouse: Catalog Error: no table signups\n"
                                       "    Did you mean \"rewards\"?\n")


# Every problem found on this machine: exit 2, one line saying what is wrong and what to do, nothing sent.
LOCAL_PROBLEMS = [
    (("optimizations", "show", "Landing Page Hero"), {}, "'Landing Page Hero' is not an optimization ID (IDs are UUIDs)"),
    (("auth", "api-keys", "revoke", "lvk_7Hq2Xw9P", "-y"), {}, "'lvk_7Hq2Xw9P' is not an API key ID"),
    (("models", "state", "ab1"), {}, "model ID 'ab1' is too short"),
    (("probe", "me"), {"config": '{"timeout": "soon"}'}, "invalid timeout 'soon': must be a number of seconds; "
                                                          "fix it with `levered config set timeout VALUE`"),
    (("probe", "me"), {"config": '{"ca_bundle": "/no/such/ca.pem"}'}, "invalid ca_bundle '/no/such/ca.pem': no such file"),
    (("probe", "me"), {"config": '{"timeout": 30,,}'}, "is not valid JSON (line 1, column 16): fix or delete the file"),
    (("probe", "me"), {"LEVERED_ENV": "staging"}, "LEVERED_ENV is 'staging'; use one of prod, testing, local"),
    (("plugins", "install", "./no-such-plugin"), {}, "no such file or directory: ./no-such-plugin"),
    (("plugins", "install", "-e", "levered-hello"), {}, "-e needs a project directory"),
    (("server", "user", "create", "bob", "--password-stdin"), {}, "'bob' is not an email address: give the user's "
                                                                 "login email, e.g. ada@acme.test"),
]


@pytest.mark.parametrize("args,env,says", LOCAL_PROBLEMS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_problems_found_locally_exit_2_with_one_line_and_send_nothing(probe, cli, stub_api, home, tmp_path, args, env,
                                                                     says):
    env = dict(env)
    if "config" in env:
        home.mkdir(exist_ok=True)
        (home / "config.json").write_text(env.pop("config"))
    run = probe(*args[1:], env=env) if args[0] == "probe" else cli(*args, env={
        "LEVERED_API_URL": stub_api.url, "LEVERED_API_KEY": KEY, "LEVERED_DATA_DIR": str(tmp_path / "data"), **env})
    assert run.exit_code == 2, run.stderr
    assert run.stderr.startswith("Error: ") and len(run.stderr.splitlines()) == 1, run.stderr
    assert says in run.stderr
    assert stub_api.requests == []
    assert not (tmp_path / "data").exists()


def test_a_new_user_with_a_short_password_exits_2_and_is_not_created(cli, tmp_path):
    data = ["--data-dir", str(tmp_path / "data"), "--init"]
    short = cli("server", "user", "create", "bob@acme.test", "--password-stdin", *data, input="short\n")
    assert short.exit_code == 2 and len(short.stderr.splitlines()) == 1, short.stderr
    assert short.stderr == ("Error: the password needs at least 8 characters; the user was not created: run the "
                            "command again with a longer one\n")
    no_org = cli("server", "user", "create", "bob@acme.test", "--org", "Nope", "--password-stdin", *data,
                 input="correct horse battery\n")
    assert no_org.exit_code == 2
    assert no_org.stderr == ("Error: no organization named 'Nope': add --create-org to create it, or omit --org for "
                             "the default one\n")

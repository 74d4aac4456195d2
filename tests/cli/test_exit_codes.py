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


def test_no_credential_exits_3_before_sending_anything(probe, stub_api):
    run = probe("me", key=None)
    assert run.exit_code == 3
    assert run.stderr == "Error: Not authenticated: run `levered login`\n"
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

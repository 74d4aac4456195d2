"""``levered dashboard`` in a real terminal: tmux runs it, sends keys and captures the screen."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import uuid

import pytest

from levered_core.testing import levered_executable

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install -y tmux) so no real terminal to drive")


class Tmux:
    """One detached tmux session on a private socket, 80×24."""

    def __init__(self, name: str, command: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]
        self.target = f"{name}:0"
        subprocess.run([*self.base, "new-session", "-d", "-s", name, "-x", "80", "-y", "24"], check=True)
        # keep the pane after the command exits, to read its last screen
        subprocess.run([*self.base, "set-option", "-t", name, "remain-on-exit", "on"], check=True)
        subprocess.run([*self.base, "respawn-pane", "-k", "-t", self.target, command], check=True)

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", self.target, *keys], check=True)

    def screen(self, escapes: bool = False) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.target],
                              check=True, capture_output=True, text=True).stdout

    def wait_for(self, *needles: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if all(needle in text for needle in needles):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needles} not on screen:\n{text}")
            time.sleep(0.1)

    def wait_gone(self, needle: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while needle in (text := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} still on screen:\n{text}")
            time.sleep(0.1)
        return text

    def dead(self) -> bool:
        out = subprocess.run([*self.base, "display-message", "-p", "-t", self.target, "#{pane_dead}"],
                             capture_output=True, text=True).stdout
        return out.strip() == "1"

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(server, tmp_path):
    sessions = []

    def start(*args: str, env: dict[str, str] | None = None) -> Tmux:
        variables = {"LEVERED_HOME": str(tmp_path / "home"), "LEVERED_API_URL": server.url,
                     "LEVERED_API_KEY": server.api_key, "LEVERED_SITE_CONFIG": str(tmp_path / "none.json"),
                     "TERM": "xterm-256color", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
        command = "env -i " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items()) + " " + \
            shlex.join([levered_executable(), "dashboard", *args])
        session = Tmux(f"levered-dash-{uuid.uuid4().hex[:12]}", command)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.kill()


def test_navigate_in_a_real_terminal_then_quit(tmux):
    term = tmux("--refresh", "2")
    screen = term.wait_for("Landing pag", "Pricing pag", "updated")
    assert "Optimization" in screen and "Lift [95%]" in screen and "q Quit" in screen
    first = re.search(r"updated (\d+)s ago", screen)
    assert first is not None
    term.keys("Down", "Enter")
    detail = term.wait_for("Allocation", "traffic", "P(best)")
    assert "holdout 10%" in detail
    term.keys("Escape")
    term.wait_for("Optimization", "Lift [95%]")
    term.wait_gone("Allocation")
    term.keys("?")
    term.wait_for("refresh now", "Keys")
    term.keys("Escape")  # a terminal sends escape as a prefix too: let it stand alone before the next key
    term.wait_gone("refresh now")
    term.keys("q")
    deadline = time.monotonic() + 10
    while not term.dead():
        assert time.monotonic() < deadline, term.screen()
        time.sleep(0.1)
    assert "Traceback" not in term.screen()


def test_no_color_means_no_hue(tmux):
    term = tmux("--refresh", "30", env={"NO_COLOR": "1"})
    term.wait_for("Landing pag", "updated")
    raw = term.screen(escapes=True)
    colours = re.findall(r"[34]8;2;(\d+);(\d+);(\d+)", raw)
    assert all(r == g == b for r, g, b in colours), set(colours) - {c for c in colours if c[0] == c[1] == c[2]}
    term.keys("q")

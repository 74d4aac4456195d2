#!/usr/bin/env python3
"""The demo behind `./dev demo`: a local server with simulated traffic, driven by the real CLI.

It starts `levered server start --demo` (SQLite + embedded DuckDB under ./.demo), waits while
the simulator sends visitors and conversions, and runs the commands a new user would, showing
their output. The server keeps running afterwards so you can explore; stop it with the command
printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def levered(env: dict[str, str], *args: str, check: bool = True) -> str:
    """Run the installed `levered`, echo the command and its output."""
    print(f"\n$ levered {shlex.join(args)}", flush=True)
    done = subprocess.run([str(pathlib.Path(sys.executable).with_name("levered")), *args], env=env,
                          capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if check and done.returncode != 0:
        raise SystemExit(f"demo step failed: levered {shlex.join(args)} (exit {done.returncode})")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=int, default=60, help="seconds of simulated traffic before results")
    parser.add_argument("--port", type=int, default=3100)
    args = parser.parse_args()
    home = ROOT / ".demo"
    data_dir = home / "server"
    env = {**os.environ, "LEVERED_HOME": str(home)}
    env.pop("LEVERED_API_KEY", None)
    levered(env, "server", "stop", "--data-dir", str(data_dir), check=False)
    port = free_port(args.port)
    levered(env, "server", "start", "--demo", "--port", str(port), "--data-dir", str(data_dir))
    state = json.loads((data_dir / "demo.json").read_text())
    env.update({"LEVERED_API_URL": state["url"], "LEVERED_API_KEY": state["api_key"]})
    hero, pricing = (o for o in sorted(state["optimizations"], key=lambda o: o["name"]))
    levered(env, "whoami")
    levered(env, "warehouse", "tables")
    levered(env, "metrics", "list")
    levered(env, "optimizations", "list")
    levered(env, "optimizations", "show", hero["id"][:8])
    levered(env, "serve", hero["id"][:8], "--context", '{"country": "US", "device_type": "mobile"}')
    print(f"\nThe simulator is sending visitors; waiting {args.wait} s for traffic and conversions...", flush=True)
    time.sleep(args.wait)
    for opt in (pricing, hero):
        if opt.get("model_id"):
            levered(env, "models", "train", opt["model_id"][:8], check=False)
        levered(env, "optimizations", "results", opt["id"][:8], check=False)
    print(f"""
The server is still running with its simulator. Keep exploring:
  export LEVERED_HOME={home} LEVERED_API_URL={state['url']} LEVERED_API_KEY={state['api_key']}
  .venv/bin/levered optimizations results {pricing['id'][:8]}
Stop it: LEVERED_HOME={home} .venv/bin/levered server stop --data-dir {data_dir}""")
    return 0


if __name__ == "__main__":
    sys.exit(main())

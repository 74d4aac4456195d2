"""Between the command and the app: ``--once`` frames and the interactive run.

Imported inside ``take_action`` only, so ``levered --help`` never imports Textual (and
``--once`` never does either: it renders the same views as plain text).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TYPE_CHECKING, TextIO

from levered_core.errors import LeveredError, UsageError
from levered_dashboard import panels, views
from levered_dashboard.data import Snapshot, fetch_round

if TYPE_CHECKING:
    from levered_core.plugin_api import LeveredClient

BOLD, RED, RESET = "\x1b[1m", "\x1b[31m", "\x1b[0m"


def once(client: LeveredClient, refresh: float, optimization_id: str | None, stream: TextIO | None = None) -> str:
    """Make one round of requests and return one frame as text.

    Plain text unless ``stream`` is a terminal and ``NO_COLOR`` is unset.

    :param optimization_id: render this optimization's detail screen instead of the list.
    :raises LeveredError: the round failed as a whole (unreachable, not authenticated, …).
    """
    snapshot = fetch_round(client, Snapshot(client.api_url))
    if snapshot.problem:
        if isinstance(snapshot.error, LeveredError):
            raise snapshot.error
        raise LeveredError(f"{snapshot.problem}: {snapshot.problem_detail}")
    width = shutil.get_terminal_size((100, 24)).columns
    now = time.time()
    if optimization_id is None:
        frame = views.list_frame(snapshot, width, refresh, now)
    else:
        item = snapshot.item(optimization_id)
        if item is None:
            raise UsageError(f"optimization {optimization_id} is not in the list (archived?)")
        frame = panels.detail_frame(snapshot, item, width, refresh, now)
    stream = stream or sys.stdout
    if stream.isatty() and "NO_COLOR" not in os.environ:
        head, _, rest = frame.partition("\n")
        frame = f"{BOLD}{head}{RESET}\n{rest}"
    return frame


def run(client: LeveredClient, refresh: float, optimization_id: str | None) -> None:
    """Run the interactive dashboard until the person quits.

    :raises UsageError: stdin or stdout is not a terminal.
    """
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("levered dashboard needs a terminal; use --once to print one frame instead")
    from levered_dashboard.app import DashboardApp

    DashboardApp(client, refresh, optimization_id).run()

"""The dashboard's screens: the list of optimizations, one optimization's detail, the keys.

Screens hold no data of their own: the app hands each a :class:`~levered_dashboard.data.Snapshot`
and they update their widgets in place (cells, panel texts), so a refresh never blanks the
screen. What is written comes from :mod:`levered_dashboard.views`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Static

from levered_dashboard import panels, views

if TYPE_CHECKING:
    from levered_dashboard.app import DashboardApp
    from levered_dashboard.data import Snapshot

#: At least this many columns puts the detail panels side by side.
TWO_COLUMNS = 160

KEYS = [
    ("↑ ↓", "move through the list; scroll the detail"),
    ("enter", "open the highlighted optimization"),
    ("escape", "back to the list (or close this help)"),
    ("r", "refresh now (otherwise every --refresh seconds)"),
    ("?", "show or hide these keys"),
    ("q", "quit"),
]


class DashboardScreen(Screen[None]):
    """What the list and detail screens share: a title line and a status line."""

    BINDINGS = [Binding("escape", "back", "Back", show=False)]

    @property
    def dashboard(self) -> DashboardApp:
        """The running app, typed."""
        return self.app  # type: ignore[return-value]

    @property
    def composed(self) -> bool:
        """Whether its widgets are there. A refresh round, a resize or the 1 s timer can
        arrive between the screen's mounting and its composing; each screen shows the
        current snapshot from its `on_mount`, so what arrives before is skipped."""
        return next(self.query("#status").results(Static), None) is not None

    def show(self, snapshot: Snapshot) -> None:
        """Show a new snapshot."""
        self.tick()

    def tick(self) -> None:
        """Rewrite the status line (called every second: "updated 4s ago")."""
        snapshot = self.dashboard.snapshot
        status = next(self.query("#status").results(Static), None)
        if status is None:  # not composed yet: the next tick
            return
        status.update(Text(views.status_line(snapshot, self.dashboard.refresh_seconds, self.dashboard.clock())))
        status.set_class(snapshot.problem is not None, "-problem")

    def on_resize(self) -> None:
        if self.composed:
            self.show(self.dashboard.snapshot)

    def action_back(self) -> None:
        """Escape on the list: already at the top."""


class ListScreen(DashboardScreen):
    """Every optimization in a table; enter opens one."""

    def __init__(self) -> None:
        super().__init__()
        self._layout: list[tuple[str, int]] = []
        self._keys: list[str] = []
        self._cells: list[tuple[str, ...]] = []

    def compose(self) -> ComposeResult:
        yield Static(Text("Levered dashboard · optimizations"), id="title")
        yield DataTable(id="optimizations", cursor_type="row", zebra_stripes=True)
        yield Static(Text(""), id="empty")
        yield Static(Text(""), id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.show(self.dashboard.snapshot)

    def show(self, snapshot: Snapshot) -> None:
        table = self.query_one(DataTable)
        width = self.size.width or self.app.size.width
        layout = views.list_columns(width)
        rows = views.list_rows(snapshot, width, self.dashboard.now())
        keys = [item.id for item in snapshot.items]
        if layout != self._layout:
            table.clear(columns=True)
            for index, (label, column_width) in enumerate(layout):
                table.add_column(Text(label), width=column_width, key=str(index))
            self._layout, self._keys, self._cells = layout, [], []
        if keys == self._keys:
            for key, old, new in zip(keys, self._cells, rows, strict=True):
                for index, (before, after) in enumerate(zip(old, new, strict=True)):
                    if before != after:
                        table.update_cell(key, str(index), Text(after))
        else:
            current = self._keys[table.cursor_row] if self._keys and table.cursor_row < len(self._keys) else None
            table.clear()
            for key, row in zip(keys, rows, strict=True):
                table.add_row(*(Text(cell) for cell in row), key=key)
            if current in keys:
                table.move_cursor(row=keys.index(current))
        self._keys, self._cells = keys, rows
        empty = self.query_one("#empty", Static)
        empty.display = not keys and snapshot.updated_at is not None
        empty.update(Text("No optimizations yet: create one with `levered optimizations create`."))
        super().show(snapshot)

    def highlighted(self) -> str | None:
        """The ID of the optimization under the cursor."""
        row = self.query_one(DataTable).cursor_row
        return self._keys[row] if 0 <= row < len(self._keys) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(DetailScreen(str(event.row_key.value)))


class Panel(Static):
    """One bordered panel of the detail screen: a title and lines of plain text."""

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(Text(""), markup=False, **kwargs)
        self.border_title = title
        self.text = ""

    def show(self, text: str) -> None:
        """Replace the panel's text, touching the screen only if it changed."""
        if text != self.text:
            self.text = text
            self.update(Text(text))


class DetailScreen(DashboardScreen):
    """One optimization: allocation, reward rates, lift, importance, trends, model state."""

    def __init__(self, optimization_id: str) -> None:
        super().__init__()
        self.optimization_id = optimization_id

    def compose(self) -> ComposeResult:
        yield Static(Text(""), id="title")
        with VerticalScroll(id="panels"):
            for index, title in enumerate(panels.PANEL_TITLES):
                yield Panel(title, id=f"panel-{index}")
        yield Static(Text(""), id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#panels").focus()
        self.show(self.dashboard.snapshot)

    def show(self, snapshot: Snapshot) -> None:
        width = self.size.width or self.app.size.width
        wide = width >= TWO_COLUMNS
        self.query_one("#panels").set_class(wide, "-wide")
        inner = ((width - 1) // 2 if wide else width) - 6  # borders, padding, scrollbar
        item = snapshot.item(self.optimization_id)
        title = self.query_one("#title", Static)
        if item is None:
            title.update(Text(f"Optimization {self.optimization_id[:8]} · not in the list "
                              "(archived or deleted?) · escape: back"))
        else:
            title.update(Text(views.clip(views.title_line(item), width - 2)))
            for index, (_, lines) in enumerate(panels.panels(item, inner, self.dashboard.now())):
                self.query_one(f"#panel-{index}", Panel).show("\n".join(lines))
        super().show(snapshot)

    BINDINGS = [Binding("escape", "back", "Back")]

    def action_back(self) -> None:
        self.app.pop_screen()


class HelpScreen(ModalScreen[None]):
    """The keys, over whatever screen is open."""

    BINDINGS = [Binding("escape,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        width = max(len(key) for key, _ in KEYS)
        text = "\n".join(f"{key:>{width}}  {meaning}" for key, meaning in KEYS)
        panel = Static(Text(text + "\n\nRead-only: the dashboard never changes anything."), id="keys")
        panel.border_title = "Keys"
        yield panel

    def action_close(self) -> None:
        self.app.pop_screen()

"""The pipeline panel as ipywidgets: stage rows, run buttons, live progress. Imported only by
``nbprod.panel()``, so ``import nbprod`` never loads ipywidgets."""

from __future__ import annotations

import html
import threading
from pathlib import Path

import ipywidgets as w

from nbprod.core.errors import NbprodError

from .links import anchor
from .runcontrol import LOCK_FILE, RunControl, RunProgress, latest_events_file
from .status_probe import (
    StageRow,
    StatusError,
    metrics_line,
    number,
    stage_names,
    stage_rows,
    stage_status,
    status_table,
)

STATE_COLOURS = {"up to date": "#1a7f37", "changed": "#9a6700", "never run": "#6e7781", "failed": "#cf222e",
                 "running": "#0969da", "queued": "#6e7781", "ran": "#1a7f37"}


class Panel(w.VBox):
    """The panel widget; ``button(description, stage)`` finds a button the way a user would."""

    # The panel of each project that follows runs in this kernel: running a panel's cell again
    # replaces it, so old outputs do not keep polling and asking status.
    _following: dict[Path, Panel] = {}

    def __init__(self, root: Path, here: Path, poll: float = 0.5):
        super().__init__()
        self.add_class("nbprod-panel")
        self.root, self.here, self.poll = root, here, poll
        self.control = RunControl(root)
        self.rows: list[StageRow] = []
        self.following: RunProgress | None = None
        self.last_run: RunProgress | None = self._last_run()
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._refreshing = False

        self.title = w.HTML(f"<b>nbprod</b> · {html.escape(root.name)}")
        self.progress_line = w.HTML("")
        self.progress_line.add_class("nbprod-progress")
        self.stage_bar = w.IntProgress(min=0, max=1, value=0, description="stages", layout=w.Layout(width="45%"))
        self.cell_bar = w.IntProgress(min=0, max=1, value=0, description="cells", layout=w.Layout(width="45%"))
        self.message = w.HTML("")
        self.message.add_class("nbprod-message")
        self.run_all = self._button("Run all", "play", lambda _: self._start())
        self.cancel = self._button("Cancel", "stop", lambda _: self._cancel())
        self.refresh_button = self._button("Refresh", "refresh", lambda _: self.refresh(wait=False))
        self.table = w.VBox()
        self.bars = w.HBox([self.stage_bar, self.cell_bar], layout=w.Layout(display="none"))
        self.children = [self.title, w.HBox([self.run_all, self.cancel, self.refresh_button]),
                         self.progress_line, self.bars, self.message, self.table]
        self.refresh(wait=True)
        previous = Panel._following.get(root)
        if previous is not None:
            previous.stop("a newer panel of this project follows its runs")
        Panel._following[root] = self
        self._thread = threading.Thread(target=self._follow_loop, name="nbprod-panel", daemon=True)
        self._thread.start()

    # --- what a user does ----------------------------------------------------------------------

    def button(self, description: str, stage: str | None = None) -> w.Button:
        """The button labelled ``description`` (in ``stage``'s row when given)."""
        scope = self if stage is None else next(r for r in self.table.children if r.stage == stage)
        found = [b for b in _walk(scope) if isinstance(b, w.Button) and b.description == description]
        if not found:
            raise LookupError(f"no button {description!r}" + (f" for stage {stage}" if stage else ""))
        return found[0]

    def states(self) -> dict[str, str]:
        """Each stage's state as the panel shows it."""
        return {row.stage: row.state for row in self.table.children}

    def refresh(self, wait: bool = False) -> None:
        """Ask ``nbprod status`` again (skipped while a run holds DVC's lock: the events tell more)."""
        if wait:
            self._refresh()
        else:
            threading.Thread(target=self._refresh, daemon=True).start()

    def stop(self, reason: str) -> None:
        """Stop following runs (the widget stays as it is, and says why)."""
        self._closed.set()
        self._say(reason)
        for button in _walk(self):
            if isinstance(button, w.Button):
                button.disabled = True

    def close(self) -> None:
        self._closed.set()
        if Panel._following.get(self.root) is self:
            del Panel._following[self.root]
        super().close()

    # --- status --------------------------------------------------------------------------------

    def _refresh(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        try:
            if self.control.active_pid() is not None:
                if not self.rows:  # opened during a run: the stages without their status; the events fill in
                    try:
                        names = stage_names(self.root)
                    except StatusError as exc:
                        self._say(str(exc), error=True)
                        return
                    self.rows = stage_rows(self.root, [{"name": n, "state": "running elsewhere"} for n in names])
                    self._render()
                self._say("a run is going; status is read again when it ends")
                return
            self._say("reading status…")
            try:
                self.rows = stage_rows(self.root, stage_status(self.root))
            except StatusError as exc:
                self._say(str(exc), error=True)
                return
            self._say(self.last_run.summary() if self.last_run is not None and self.last_run.ended else "",
                      error=self.last_run is not None and self.last_run.ok is False)
            self._render()
        finally:
            self._refreshing = False

    def _last_run(self) -> RunProgress | None:
        path = latest_events_file(self.root)
        if path is None:
            return None
        progress = RunProgress(path)
        progress.read()
        return progress

    # --- runs ----------------------------------------------------------------------------------

    def _start(self, stages: list[str] | None = None, from_stage: str | None = None) -> None:
        try:
            run = self.control.start(stages, from_stage)
        except NbprodError as exc:
            self._say(str(exc), error=True)
            return
        with self._lock:
            self.following = RunProgress(run.events_path)
        self._say(f"run {run.id} started")
        self._render()

    def _cancel(self) -> None:
        if self.control.cancel():
            self._say("cancelling: the running stage is interrupted, dvc.lock keeps its last good state")
        else:
            self._say("no run is going")

    def _follow_loop(self) -> None:
        while not self._closed.wait(self.poll):
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - the panel must keep following; say what broke
                self._say(f"panel: {type(exc).__name__}: {exc}", error=True)

    def _tick(self) -> None:
        with self._lock:
            pid = self.control.active_pid()
            if self.following is None and pid is not None:
                path = self._current_events()
                if path is None:
                    return  # the run holds the lock but has not created its events file yet
                self.following = RunProgress(path)
            progress = self.following
            if progress is None:
                return
            changed = progress.read()
            # Not at run_end: `nbprod run` renders the HTML reports after it, and status needs DVC's
            # lock free; the run is over for the panel when its process is.
            finished = pid is None
            if finished:
                progress.read()
                self.following, self.last_run = None, progress
                self.control.reap()
                if not progress.ended:
                    why = self.control.own_failure() or "the run stopped before its end (cancelled or killed)"
                    progress.stopped(why)
        if finished:
            self._say(progress.summary(), error=not progress.ok)
            self._render()
            self.refresh(wait=True)
        elif changed:
            self._render()

    def _current_events(self) -> Path | None:
        own = self.control.own_events()
        if own is not None:
            return own
        path = latest_events_file(self.root)
        try:
            started = (self.root / LOCK_FILE).stat().st_mtime_ns
        except OSError:
            return None
        # The lock is written when the run starts and the events file a moment later: an older events
        # file belongs to an earlier run.
        return path if path is not None and path.stat().st_mtime_ns >= started else None

    # --- drawing -------------------------------------------------------------------------------

    def _say(self, text: str, error: bool = False) -> None:
        colour = STATE_COLOURS["failed"] if error else "inherit"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>' if text else ""

    def _render(self) -> None:
        with self._lock:
            progress = self.following
            running = progress is not None
            self.run_all.disabled = running
            self.cancel.disabled = not running
            self.progress_line.value = html.escape(progress.summary()) if running else ""
            self.bars.layout.display = "flex" if running else "none"  # bars only while a run goes
            if running:
                total = max(len(progress.stages), 1)
                done = sum(1 for p in progress.progress.values() if p.state in ("ran", "failed"))
                current = progress.running_stage()
                self.stage_bar.max, self.stage_bar.value = total, min(done, total)
                self.cell_bar.max = max(current.cells, 1) if current else 1
                self.cell_bar.value = min(current.cell, self.cell_bar.max) if current else 0
            existing = {r.stage: r for r in self.table.children}
            children = []
            for row in self.rows:
                widget = existing.get(row.name) or self._row(row.name)
                self._fill(widget, row, progress)
                children.append(widget)
            if [c.stage for c in children] != [c.stage for c in self.table.children]:
                self.table.children = children

    def _row(self, name: str) -> w.HBox:
        cells = [w.HTML(f"<b>{html.escape(name)}</b>", layout=w.Layout(width="100px")),
                 w.HTML(layout=w.Layout(width="190px")), w.HTML(layout=w.Layout(width="290px", overflow="hidden")),
                 w.HTML(layout=w.Layout(width="120px")),
                 self._button("Run this stage", "play", lambda _: self._start([name]), width="130px"),
                 self._button("Run from here", "forward", lambda _: self._start(from_stage=name), width="130px")]
        row = w.HBox(cells)
        row.stage = name
        row.add_class("nbprod-stage")
        row.add_class(f"nbprod-stage-{name}")
        return row

    def _fill(self, widget: w.HBox, row: StageRow, progress: RunProgress | None) -> None:
        _, state_cell, metrics_cell, links_cell, run_one, run_from = widget.children
        state, why, metrics = row.state, row.why(), row.metrics
        details = "; ".join(row.details)
        live = progress.progress.get(row.name) if progress else None
        last = self.last_run.progress.get(row.name) if self.last_run else None
        if live is not None:
            state = live.state
            why = f"running: cell {live.cell}/{live.cells}" if state == "running" else state
            metrics = live.metrics or metrics
            details = live.message or ""
        elif last is not None and last.state == "failed" and row.state != "up to date":
            state, why, details = "failed", "failed", last.message or ""
        widget.state = state
        colour = STATE_COLOURS.get(state, "inherit")
        note = f"<br><small>{html.escape(details[:160])}</small>" if details and state != "up to date" else ""
        state_cell.value = (f'<span class="nbprod-state" data-state="{html.escape(state)}" '
                            f'title="{html.escape(details)}" style="color:{colour}">{html.escape(why)}</span>{note}')
        every = html.escape(", ".join(f"{k}={number(v)}" for k, v in sorted(metrics.items())))
        metrics_cell.value = f'<small title="{every}" style="white-space:nowrap">{_metrics_text(metrics)}</small>'

        links = []
        if row.notebook:
            links.append(anchor(self.root / row.notebook, self.here, "notebook"))
        if row.report:
            links.append(anchor(self.root / row.report, self.here, "report"))
        links_cell.value = " · ".join(links)
        run_one.disabled = run_from.disabled = progress is not None

    def _button(self, description: str, icon: str, handler, width: str = "auto") -> w.Button:
        button = w.Button(description=description, icon=icon, tooltip=description, layout=w.Layout(width=width))
        button.on_click(handler)
        return button

    def _repr_mimebundle_(self, **kwargs):
        # Front ends without a widget manager show text/plain: make it the status table.
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = status_table(self.rows)
        return bundle


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def _metrics_text(metrics: dict) -> str:
    return html.escape(metrics_line(metrics, shown=3)) if metrics else "no metrics"

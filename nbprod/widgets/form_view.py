"""The parameters form as ipywidgets; imported only by ``nbprod.params_form()``."""

from __future__ import annotations

import html
import json
import threading

import ipywidgets as w

from nbprod.core.errors import NbprodError

from .experiment import Experiment, start_experiment
from .params import NotebookParams, Param, check, parse_text, save
from .runcontrol import LOCK_FILE, lock_holder
from .status_probe import number


class ParamsForm(w.VBox):
    """One widget per parameter; ``button(description)`` and ``field(name)`` find them as a user would."""

    def __init__(self, form: NotebookParams, poll: float = 0.5):
        super().__init__()
        self.add_class("nbprod-params")
        self.form, self.poll = form, poll
        self.fields = {p.name: _field(p) for p in form.params}
        self.experiment: Experiment | None = None
        self.message = w.HTML("")
        self.message.add_class("nbprod-message")
        self.result = w.HTML("")
        self.result.add_class("nbprod-experiment")
        self.save_button = _button("Save to params.yaml", "save", lambda _: self._save())
        self.experiment_button = _button("Run as experiment", "flask", lambda _: self._run_experiment())
        title = w.HTML(f"<b>parameters</b> · {html.escape(form.notebook)} (params.yaml section "
                       f"<code>{html.escape(form.section)}</code>)")
        self.children = [title, *self.fields.values(), w.HBox([self.save_button, self.experiment_button]),
                         self.message, self.result]

    def button(self, description: str) -> w.Button:
        return next(b for b in (self.save_button, self.experiment_button) if b.description == description)

    def field(self, name: str) -> w.Widget:
        return self.fields[name]

    def values(self) -> dict[str, object]:
        """Every field's value, checked; raises the first NbprodError."""
        values = {}
        for name, widget in self.fields.items():
            value = widget.value
            if isinstance(widget, w.Text) and self.form.get(name).kind != "a string":
                value = parse_text(self.form, name, value)
            values[name] = check(self.form, name, value)
        return values

    # --- buttons -------------------------------------------------------------------------------

    def _save(self) -> None:
        try:
            values = self.values()
            # A stage reads params.yaml when it starts, and DVC hashes it when the stage ends: a save in
            # between would record values the stage never used.
            self._refuse_during_a_run()
            changed = save(self.form, values)
        except NbprodError as exc:
            self._say(str(exc), error=True)
            return
        self._say(f"saved {', '.join(changed)} to params.yaml" if changed else "params.yaml already holds these values")

    def _run_experiment(self) -> None:
        try:
            values = self.values()
            self._refuse_during_a_run()
        except NbprodError as exc:
            self._say(str(exc), error=True)
            return
        changes = {f"{self.form.section}.{n}": v for n, v in values.items()
                   if json.dumps(v) != json.dumps(self.form.get(n).value, default=str)}
        before = _all_metrics(self.form.project.root)
        self.experiment = start_experiment(self.form.project.root, changes)
        settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in changes.items()) or "no changes"
        self._say(f"experiment running: dvc exp run -S {settings}")
        self.experiment_button.disabled = True
        threading.Thread(target=self._wait, args=(self.experiment, before), daemon=True).start()

    def _wait(self, experiment: Experiment, before: dict) -> None:
        while experiment.running:
            threading.Event().wait(self.poll)
        self.experiment_button.disabled = False
        result = experiment.result() or {"ok": False, "message": f"see {experiment.folder / 'output.log'}"}
        if not result["ok"]:
            self._say(f"experiment failed: {result['message']}", error=True)
            return
        self._say(f"experiment {result.get('name') or ''} done".replace("  ", " "))
        self.result.value = _compare(before, _all_metrics(self.form.project.root))

    def _refuse_during_a_run(self) -> None:
        holder = lock_holder(self.form.project.root)
        if holder is None and self.experiment is not None and self.experiment.running:
            holder = self.experiment.process.pid
        if holder is not None:
            raise NbprodError(f"another nbprod run is in progress (pid {holder})", LOCK_FILE,
                              fix="wait for it to finish, or cancel it, then run again")

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#cf222e" if error else "inherit"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>' if text else ""


def _field(param: Param) -> w.Widget:
    label = {"description": param.name, "style": {"description_width": "120px"}, "layout": w.Layout(width="420px")}
    value = param.value
    if param.kind == "a boolean":
        return w.Checkbox(value=bool(value), indent=True, **label)
    if param.kind in ("a number", "a whole number") and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        integer = isinstance(param.default, int)
        if param.low is not None:
            cls = w.IntSlider if integer else w.FloatSlider
            extra = {} if integer else {"step": (param.high - param.low) / 100, "readout_format": ".4g"}
            return cls(value=value, min=param.low, max=param.high, continuous_update=False, **extra, **label)
        return (w.IntText if integer else w.FloatText)(value=value, **label)
    if param.kind == "a string" and isinstance(value, str):
        return w.Text(value=value, **label)
    return w.Text(value=json.dumps(value) if value is not None else "None", **label)  # lists, mappings, None


def _button(description: str, icon: str, handler) -> w.Button:
    button = w.Button(description=description, icon=icon, tooltip=description, layout=w.Layout(width="auto"))
    button.on_click(handler)
    return button


def _all_metrics(root) -> dict[str, object]:
    from nbprod.core.project import METRICS_DIR

    values: dict[str, object] = {}
    for path in sorted((root / METRICS_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            values.update({f"{path.stem}.{k}": v for k, v in data.items()})
    return values


def _compare(before: dict, after: dict, limit: int = 30) -> str:
    """The metrics the experiment changed, current beside experiment, as an HTML table."""
    names = sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
    same = len(set(before) | set(after)) - len(names)
    note = f"<small>{same} other metrics unchanged</small>" if same else ""
    if not names:
        return f"<small>no metric changed ({same} unchanged)</small>"
    names = names[:limit]
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{_cell(before.get(n))}</td><td>{_cell(after.get(n))}</td></tr>"
                   for n in names)
    return (f'<table class="nbprod-compare"><tr><th>metric</th><th>current</th><th>experiment</th></tr>{rows}'
            f"</table>{note}")


def _cell(value: object) -> str:
    return "-" if value is None else html.escape(number(value))

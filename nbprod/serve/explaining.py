"""POST /explain (``[tool.nbprod.serve] explain = true``): per-row SHAP contributions from the served
version, against a background sample of that version's own training data (read from the DVC cache
with its hash checked, like the model). The explainer is built once per load, that is once per swap;
a version that cannot be explained keeps answering /predict and /explain says why in one line.

Budget, so that /predict is not slowed: at most ``explain_max_rows`` rows a request, one explanation
at a time per worker, computed row by row in a worker thread and stopped with 503 once
``explain_timeout`` seconds have passed; and after an explanation that took t seconds the worker
refuses the next for t * (1 / explain_share - 1) seconds (429 with Retry-After, answered before the
body is read), so explaining takes at most ``explain_share`` of the worker's time.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from ..core.errors import NbprodError
from .contract import ContractError
from .loaded import LoadedModel, first_frame


@dataclass
class ServedExplainer:
    shap: object             # nbprod.explain.shapvalues.ShapExplainer
    background_rows: int
    source: str


class TimeLimit(Exception):
    pass


class Budget:
    """One explanation at a time, and at most ``share`` of the time spent explaining."""

    def __init__(self, share: float):
        self.pause = 1 / share - 1
        self.lock = threading.Lock()
        self.busy = False
        self.closed_until = 0.0

    def take(self) -> float:
        """0 when the caller may explain now, else the seconds to wait."""
        with self.lock:
            now = time.monotonic()
            if self.busy or now < self.closed_until:
                return max(self.closed_until - now, 0.1)
            self.busy = True
            return 0.0

    def give_back(self, took: float) -> None:
        with self.lock:
            self.busy = False
            self.closed_until = time.monotonic() + took * self.pause


def attach(root: Path, loaded: LoadedModel) -> LoadedModel:
    """Give ``loaded`` its explainer, or the one-line reason it has none."""
    from ..explain.shapvalues import BACKGROUND_ROWS, Unexplainable, build

    info = loaded.info
    features = [str(f) for f in loaded.model.feature_names_in_]
    try:
        training = first_frame(root, info.training, features)
    except NbprodError as exc:
        loaded.explain_error = f"{info.tag} has no cached training sample to explain against: {exc}"
        return loaded
    if training is None or not len(training):
        loaded.explain_error = (f"{info.tag} has no cached training sample to explain against: none of its "
                                "training inputs is a Parquet or CSV file holding the model's columns")
        return loaded
    sample = training[features].sample(min(len(training), BACKGROUND_ROWS), random_state=0)
    try:
        explainer = build(loaded.model, sample)
    except Unexplainable as exc:
        loaded.explain_error = f"shap cannot explain {info.tag}'s model: {exc}"
        return loaded
    source = ", ".join(f"{ref.path} ({ref.md5})" for ref in info.training)
    loaded.explainer = ServedExplainer(explainer, len(sample), source)
    return loaded


def _contributions(model: LoadedModel, frame, timeout: float) -> dict:
    explainer = model.explainer.shap
    deadline = time.perf_counter() + timeout
    rows, bases = [], []
    for start in range(len(frame)):
        if rows and time.perf_counter() > deadline:
            raise TimeLimit(f"the explanation took longer than explain_timeout = {timeout:g} s ({len(rows)} of "
                            f"{len(frame)} rows done); send fewer rows")
        values, base = explainer.contributions(frame.iloc[start:start + 1])
        rows.append(dict(zip(explainer.columns, (float(v) for v in values[0]))))
        bases.append(float(base[0]))
    if time.perf_counter() > deadline and len(frame) > 1:
        raise TimeLimit(f"the explanation took longer than explain_timeout = {timeout:g} s; send fewer rows")
    return {"contributions": rows, "base_values": bases, "output": explainer.output, "explainer": explainer.kind,
            "background": {"rows": model.explainer.background_rows, "source": model.explainer.source},
            "predictions": model.predict(frame)["predictions"]}


def add_route(app, state, read_json, respond, max_body: int) -> None:
    """Register POST /explain on ``app`` (``read_json`` and ``respond`` are the app's own helpers)."""
    import anyio

    settings = state.settings
    budget = Budget(settings.explain_share)

    @app.post("/explain")
    async def explain(request: Request):
        model = state.prod.model  # read once: this request is explained by this version
        wait = budget.take()
        if wait:
            return respond(429, {"error": "this worker's explanation budget is spent (explain_share); retry "
                                          "after the Retry-After seconds", "field": None}, model.version,
                           {"Retry-After": str(math.ceil(wait))})
        start = time.perf_counter()
        try:
            return await _answer(request, model)
        finally:
            budget.give_back(time.perf_counter() - start)

    async def _answer(request, model):
        try:
            frame = model.contract.frame(await read_json(request, max_body))
        except ContractError as exc:
            return respond(exc.status, exc.to_dict(), model.version)
        if model.explainer is None:
            return respond(503, {"error": model.explain_error, "field": None}, model.version)
        if len(frame) > settings.explain_max_rows:
            return respond(413, {"error": f"{len(frame)} rows sent; /explain takes at most "
                                          f"{settings.explain_max_rows} (explain_max_rows)", "field": "records"},
                           model.version)
        try:
            answer = await anyio.to_thread.run_sync(_contributions, model, frame, settings.explain_timeout)
        except TimeLimit as exc:
            return respond(503, {"error": str(exc), "field": None}, model.version)
        answer["version"] = model.version
        return respond(200, answer, model.version)

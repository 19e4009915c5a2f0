"""The ASGI app of ``nbprod serve`` (FastAPI): /predict, /feedback, /healthz, /readyz, /model, /metrics
(and /explain when ``[tool.nbprod.serve] explain = true``: ``explaining.py``).

Every response carries ``X-Model-Version``. With ``NBPROD_SERVE_TOKEN`` set, every path but /healthz
needs ``Authorization: Bearer TOKEN``. No endpoint takes a path or a version from the request: the
versions served come from the registry tags and ``[tool.nbprod.serve]`` only.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .contract import ContractError
from .loader import resolve
from .prometheus import ServeMetrics
from .predlog import PredictionLog
from .routing import CHALLENGER, PROD, Router
from .loaded import LoadedModel, load_version
from .settings import TOKEN_ENV, ServeSettings
from .swap import ModelSlot, Poller, say

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
JSON = "application/json"


class ServeState:
    """Everything a worker serves with: the variants' slots, routing, metrics, log, poller."""

    def __init__(self, settings: ServeSettings, prod: LoadedModel | None = None,
                 challenger: LoadedModel | None = None):
        self.settings = settings
        self.root = Path(settings.root)
        from nbprod.feedback.settings import load_feedback_settings, request_keys

        feedback = load_feedback_settings(self.root)
        self.key_field = feedback.key_field  # outcomes can be joined by this request field
        self.extra_keys = request_keys(self.root, settings.route_field)
        self.metrics = ServeMetrics()
        prod = self.explainable(prod) if prod else self.load(resolve(self.root, settings.model, settings.version))
        self.prod = ModelSlot(prod)
        self.metrics.serving(PROD, prod.version)
        self.challenger: LoadedModel | None = None
        if settings.challenger:
            self.challenger = challenger or self.load(resolve(self.root, settings.model, settings.challenger))
            self.metrics.serving(CHALLENGER, self.challenger.version)
        share = next(iter(settings.split.values()), 0.0)
        self.router = Router(share=float(share), shadow=bool(settings.shadow))
        self.log: PredictionLog | None = None
        if settings.log:
            self.log = PredictionLog(self.root / settings.log_dir, settings.log_max_bytes, settings.log_keep,
                                     settings.log_queue, settings.log_inputs, self.metrics.dropped.inc)
        self.feedback = None
        if settings.log:  # outcomes are stored beside the predictions they are joined with
            from nbprod.feedback.endpoint import FeedbackSink

            self.feedback = FeedbackSink(self.root / settings.log_dir, settings, feedback,
                                         self.metrics.feedback_dropped.inc)
        self.poller: Poller | None = None
        if not settings.version:
            self.poller = Poller(self.root, settings.model, self.prod, settings.poll_interval, self.load,
                                 self._swapped, self._swap_failed)

    def load(self, info) -> LoadedModel:
        return self.explainable(load_version(self.root, info, self.settings.max_batch, self.extra_keys))

    def explainable(self, loaded: LoadedModel) -> LoadedModel:
        """With /explain on, the version's explainer, built once per load: at start and on each swap."""
        if self.settings.explain and loaded.explainer is None and loaded.explain_error is None:
            from .explaining import attach

            attach(self.root, loaded)
        return loaded

    def _swapped(self, old: str, new: str) -> None:
        self.metrics.swaps.labels("ok").inc()
        self.metrics.serving(PROD, new, old)
        say(f"worker {os.getpid()}: now serving {self.settings.model}@{new} (was {old})")

    def _swap_failed(self, version: str, why: str) -> None:
        self.metrics.swaps.labels("failed").inc()
        say(f"worker {os.getpid()}: not swapping to {version}, keeping {self.prod.model.version}: {why}")

    def start(self) -> None:
        if self.log:
            self.log.start()
        if self.feedback:
            self.feedback.start()
        if self.poller:
            self.poller.start()

    def stop(self) -> None:
        if self.poller:
            self.poller.stop()
        if self.log:
            self.log.close()
        if self.feedback:
            self.feedback.stop()


def _json(status: int, payload: dict, version: str | None = None, extra: dict | None = None):
    headers = {"X-Model-Version": version} if version else {}
    if extra:
        headers.update(extra)
    return Response(json.dumps(payload, allow_nan=False), status, headers, media_type=JSON)


def create_app(settings: ServeSettings, prod: LoadedModel | None = None, challenger: LoadedModel | None = None):
    state = ServeState(settings, prod, challenger)

    @asynccontextmanager
    async def lifespan(_app):
        state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="nbprod serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serve = state
    metrics, router, max_body = state.metrics, state.router, settings.max_body_bytes

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return _json(exc.status_code, {"error": str(exc.detail), "field": None})

    @app.exception_handler(Exception)
    async def unexpected(_request, exc: Exception):
        metrics.errors.labels("internal").inc()
        return _json(500, {"error": f"internal error ({type(exc).__name__})", "field": None})

    @app.get("/healthz")
    async def healthz():
        return _json(200, {"status": "alive"})

    @app.get("/readyz")
    async def readyz():
        model = state.prod.model
        try:
            model.smoke()
        except Exception as exc:  # noqa: BLE001 - the user's model can raise anything: not ready, and why
            return _json(503, {"status": "not ready", "error": f"{type(exc).__name__}: {exc}"}, model.version)
        return _json(200, {"status": "ready", "version": model.version}, model.version)

    @app.get("/model")
    async def model_info():
        model = state.prod.model
        body = {**model.describe(), "worker": os.getpid(), "routing": {"mode": router.mode}}
        if state.challenger is not None:
            body["routing"].update({"share": router.share, "challenger": state.challenger.describe()})
        return _json(200, body, model.version)

    @app.get("/metrics")
    async def prometheus():
        data, content_type = metrics.render()
        return Response(data, 200, {"X-Model-Version": state.prod.model.version}, media_type=content_type)

    @app.post("/predict")
    async def predict(request: Request):
        start = time.perf_counter()
        request_id = request.headers.get("x-request-id", "")
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        prod_model = state.prod.model  # read once: this request is answered by this version
        try:
            body = await _read_json(request, max_body)
            key = request.headers.get(settings.route_header) if settings.route_header else None
            if settings.route_field and isinstance(body, dict) and body.get(settings.route_field) is not None:
                key = str(body[settings.route_field])
            variant = router.choose(key)
            model = state.challenger if variant == CHALLENGER else prod_model
            frame = model.contract.frame(body)
        except ContractError as exc:
            metrics.errors.labels("contract").inc()
            metrics.requests.labels("none", str(exc.status)).inc()
            return _json(exc.status, exc.to_dict(), prod_model.version, {"X-Request-Id": request_id})
        answer = model.predict(frame)
        latency = time.perf_counter() - start
        _observe(metrics, variant, answer, latency)
        answer.update(version=model.version, variant=variant, request_id=request_id)
        if state.log is not None:  # a queue put: the log's thread formats and writes the line
            state.log.submit(_entry(state, variant, model.version, request_id, answer, latency, False,
                                    _logged_key(state, body)),
                             body, model.contract.names)
        response = _json(200, answer, model.version, {"X-Request-Id": request_id})
        if router.shadow and state.challenger is not None:
            # Scored after the answer is sent (in Starlette's thread pool), never delaying it.
            response.background = BackgroundTask(_shadow, state, request_id, body, answer)
        return response

    @app.post("/feedback")
    async def feedback(request: Request):
        version = state.prod.model.version
        if state.feedback is None:
            return _json(409, {"error": "outcomes are stored beside the prediction log, which is off",
                               "field": "log"}, version)
        try:
            body = await _read_json(request, max_body)
        except ContractError as exc:
            return _json(exc.status, exc.to_dict(), version)
        status, answer = state.feedback.receive(body, [m for m in (state.prod.model, state.challenger) if m])
        return _json(status, answer, version)

    if settings.explain:
        from .explaining import add_route

        add_route(app, state, _read_json, _json, max_body)
    return _Guard(app, os.environ.get(TOKEN_ENV) or None, lambda: state.prod.model.version)


async def _read_json(request, limit: int):
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ContractError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise ContractError(413, f"the body is {declared} bytes, more than the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ContractError(413, f"the body is more than the limit of {limit} bytes")
        chunks.append(chunk)
    if size == 0:
        raise ContractError(400, "the body is empty; send a JSON object with 'records' or 'columns'")
    try:
        return json.loads(b"".join(chunks))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(400, f"the body is not valid JSON ({str(exc)[:120]})") from None
    except RecursionError:
        raise ContractError(400, "the body's JSON is nested too deeply") from None


def _observe(metrics: ServeMetrics, variant: str, answer: dict, latency: float) -> None:
    metrics.requests.labels(variant, "200").inc()
    metrics.latency.labels(variant).observe(latency)
    if "classes" in answer:
        for value in answer["predictions"]:
            metrics.predictions.labels(variant, str(value)).inc()
        for row in answer["probabilities"]:
            metrics.scores.labels(variant).observe(row[-1])


def _shadow(state: ServeState, request_id: str, body, answer: dict) -> None:
    """The shadow's scoring of a request already answered by production: metrics and the log only."""
    shadow = state.challenger
    start = time.perf_counter()
    try:
        shadow_answer = shadow.predict(shadow.contract.frame(body))
    except ContractError:
        state.metrics.errors.labels("shadow_contract").inc()
        return
    except Exception:  # noqa: BLE001 - the shadow's failure never reaches the caller: counted in /metrics
        logging.getLogger(__name__).debug("shadow prediction failed", exc_info=True)
        state.metrics.errors.labels("shadow_model").inc()
        return
    took = time.perf_counter() - start
    _observe(state.metrics, CHALLENGER, shadow_answer, took)
    state.metrics.shadow_disagree.inc(sum(a != b for a, b in zip(answer["predictions"],
                                                                  shadow_answer["predictions"])))
    if state.log is not None:
        state.log.submit(_entry(state, CHALLENGER, shadow.version, request_id, shadow_answer, took, True,
                                _logged_key(state, body)),
                         body, shadow.contract.names)


def _logged_key(state: ServeState, body) -> str | None:
    """The request's ``key_field`` value as logged (hashed unless log_inputs = "values"), or None."""
    if state.key_field is None or not isinstance(body, dict) or body.get(state.key_field) is None:
        return None
    from nbprod.feedback.store import hide_key

    return hide_key(str(body[state.key_field]), state.settings.log_inputs)


def _entry(state: ServeState, variant: str, version: str, request_id: str, answer: dict, latency: float,
           shadow: bool, key: str | None = None) -> dict:
    entry = {"time": time.time(), "request_id": request_id,
             "variant": variant, "shadow": shadow, "model": state.settings.model, "version": version,
             "worker": os.getpid(), "rows": len(answer["predictions"]), "latency_ms": round(latency * 1000, 3),
             "predictions": answer["predictions"]}
    if "probabilities" in answer:
        entry["probabilities"] = answer["probabilities"]
    if "classes" in answer:  # the order of the probabilities, for the join with outcomes
        entry["classes"] = answer["classes"]
    if key is not None:
        entry["key"] = key
    return entry


class _Guard:
    """Pure ASGI wrapper (cheaper than HTTP middleware): bearer token check, X-Model-Version header."""

    def __init__(self, app, token: str | None, version):
        self.app, self.version = app, version
        self.state = app.state
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.expected is not None and scope["path"] != "/healthz":
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps({"error": "missing or wrong bearer token", "field": "Authorization"}).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"), (b"x-model-version", self.version().encode())]})
                await send({"type": "http.response.body", "body": body})
                return

        async def send_with_version(message):
            if message["type"] == "http.response.start" and \
                    not any(k == b"x-model-version" for k, _ in message.get("headers", ())):
                message["headers"] = [*message.get("headers", ()), (b"x-model-version", self.version().encode())]
            await send(message)

        await self.app(scope, receive, send_with_version)


def app_from_env():
    """uvicorn factory for worker processes: settings from ``NBPROD_SERVE_SETTINGS``."""
    return create_app(ServeSettings.from_env())

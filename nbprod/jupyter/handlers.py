"""REST handlers under /nbprod/api: each a few lines over nbprod's Python API.

Every handler is a Jupyter ``APIHandler`` with ``@tornado.web.authenticated``, so the server's token
and XSRF checks apply. Paths from the client are resolved inside the server root; stage names are
checked against the schema and the pipeline; the only process started is ``nbprod run``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from nbprod.core.errors import NbprodError
from nbprod.notebooks.tags import SCHEMA, is_valid_name

from ..execution.launch import RunRegistry, run_state



class Refused(Exception):
    """A request nbprod will not serve; the status and one-line message go back to the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class NbprodHandler(APIHandler):
    """Shared plumbing: the server root, project lookup, and one-line JSON errors."""

    def initialize(self, runs: RunRegistry) -> None:
        self.runs = runs

    @property
    def server_root(self) -> Path:
        return Path(self.settings["server_root_dir"]).expanduser().resolve()

    def inside_root(self, relative: str) -> Path:
        root = self.server_root
        if "\0" in relative:
            raise Refused(400, "path holds a NUL character")
        target = (root / relative.lstrip("/")).resolve()
        if target != root and root not in target.parents:
            raise Refused(403, f"path {relative!r} is outside the server root")
        return target

    async def project(self, relative: str):
        from nbprod.core.project import find_project

        target = self.inside_root(relative)
        project = await asyncio.to_thread(find_project, target)
        root = project.root.resolve()
        if root != self.server_root and self.server_root not in root.parents:
            raise Refused(403, "the project around this path starts outside the server root")
        return project

    async def project_and_pipeline(self, data: dict):
        """The project named by a request body's "path", and its pipeline."""
        from nbprod.notebooks.pipeline import load_pipeline

        path = data.get("path", "")
        if not isinstance(path, str):
            raise Refused(400, "path must be a string")
        project = await self.project(path)
        return project, await asyncio.to_thread(load_pipeline, project)

    def relative_root(self, project) -> str:
        """The project root as the UI opens files: relative to the server root, "" for the root."""
        rel = project.root.resolve().relative_to(self.server_root).as_posix()
        return "" if rel == "." else rel

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise Refused(400, "request body is not JSON") from None
        if not isinstance(data, dict):
            raise Refused(400, "request body must be a JSON object")
        return data

    def reply(self, data: dict, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    async def serve(self, work) -> None:
        try:
            self.reply(*await work())
        except Refused as exc:
            self.reply({"message": exc.message}, exc.status)
        except NbprodError as exc:
            self.reply({"message": self.root_relative(str(exc))}, 400)
        except Exception as exc:  # noqa: BLE001 - e.g. DVC refusing while a terminal run holds its lock
            self.log.exception("nbprod: %s failed", self.request.path)
            self.reply({"message": self.root_relative(f"{type(exc).__name__}: {' '.join(str(exc).split())}")}, 500)

    def root_relative(self, message: str) -> str:
        """Paths in messages as the UI knows them: a client never learns where the server root lies."""
        root = str(self.server_root)
        return message.replace(root + "/", "").replace(root, ".")


class SchemaHandler(NbprodHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.reply(SCHEMA)


class PipelineHandler(NbprodHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work():
            from nbprod.notebooks.pipeline import load_pipeline

            project = await self.project(self.get_argument("path", ""))
            data = (await asyncio.to_thread(load_pipeline, project)).to_dict()
            data["root"] = self.relative_root(project)
            return (data,)

        await self.serve(work)


class StatusHandler(NbprodHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work():
            project = await self.project(self.get_argument("path", ""))
            active = self.runs.active(project.root.resolve())
            if active is not None:
                # dvc holds the repo lock while a run is going; the events say what is happening.
                return ({"root": self.relative_root(project), "running": active.id, "stages": []},)
            from nbprod.execution.status import pipeline_status

            states = await asyncio.to_thread(pipeline_status, project)
            return ({"root": self.relative_root(project), "running": None,
                     "stages": [s.to_dict() for s in states]},)

        await self.serve(work)


class RunsHandler(NbprodHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work():
            project = await self.project(self.get_argument("path", ""))
            recent = self.runs.recent(project.root.resolve())
            return ({"runs": [{"id": r.id, "running": r.running} for r in recent]},)

        await self.serve(work)

    @tornado.web.authenticated
    async def post(self) -> None:
        async def work():
            data = self.body()
            project, pipeline = await self.project_and_pipeline(data)
            known = {s.name for s in pipeline.stages}
            stages = data.get("stages", [])
            from_stage = data.get("from")
            if not isinstance(stages, list):
                raise Refused(400, "stages must be a list of stage names")
            keep_going = data.get("keep_going", False)
            if not isinstance(keep_going, bool):
                raise Refused(400, "keep_going must be true or false")
            for name in [*stages, *([from_stage] if from_stage is not None else [])]:
                check_stage_name(name, known)
            root = project.root.resolve()
            if self.runs.active(root) is not None:
                raise Refused(409, "a run is already going in this project; cancel it or wait")
            run = self.runs.start(root, stages, from_stage, keep_going)
            return ({"id": run.id, "running": True}, 202)

        await self.serve(work)


class DebugHandler(NbprodHandler):
    """Write the stage's debug notebook (inputs loaded from the DVC cache) for the UI to open."""

    @tornado.web.authenticated
    async def post(self) -> None:
        async def work():
            from nbprod.execution.debug import debug_notebook

            data = self.body()
            project, pipeline = await self.project_and_pipeline(data)
            stage = data.get("stage")
            check_stage_name(stage, {s.name for s in pipeline.stages})
            root = project.root.resolve()
            if self.runs.active(root) is not None:
                raise Refused(409, "a run is going in this project; debug once it has finished")
            notebook = (await asyncio.to_thread(debug_notebook, project, stage)).resolve()
            return ({"notebook": notebook.relative_to(self.server_root).as_posix()},)

        await self.serve(work)


def check_stage_name(name: object, known: set[str]) -> None:
    if not isinstance(name, str) or not is_valid_name(name):
        raise Refused(400, f"{name!r} is not a valid stage name")
    if name not in known:
        raise Refused(400, f"no stage named {name!r} in this project")


class RunEventsHandler(NbprodHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        async def work():
            project = await self.project(self.get_argument("path", ""))
            run = self.runs.get(project.root.resolve(), run_id)
            if run is None:
                raise Refused(404, f"no run {run_id!r} in this project")
            try:
                offset = max(0, int(self.get_argument("offset", "0")))
            except ValueError:
                raise Refused(400, "offset must be a number") from None
            return (run_state(run, offset),)

        await self.serve(work)


class RunCancelHandler(NbprodHandler):
    @tornado.web.authenticated
    async def post(self, run_id: str) -> None:
        async def work():
            path = self.body().get("path", "")
            if not isinstance(path, str):
                raise Refused(400, "path must be a string")
            project = await self.project(path)
            run = self.runs.get(project.root.resolve(), run_id)
            if run is None:
                raise Refused(404, f"no run {run_id!r} in this project")
            return ({"id": run.id, "cancelled": self.runs.cancel(run)},)

        await self.serve(work)


def setup_handlers(serverapp) -> None:
    from .models import models_routes  # the Models panel's endpoints (models.py imports this module)

    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "nbprod", "api")
    runs = RunRegistry()
    web_app.settings["nbprod_runs"] = runs
    kwargs = {"runs": runs}
    web_app.add_handlers(".*$", [
        (url_path_join(base, "schema"), SchemaHandler, kwargs),
        (url_path_join(base, "pipeline"), PipelineHandler, kwargs),
        (url_path_join(base, "status"), StatusHandler, kwargs),
        (url_path_join(base, "runs"), RunsHandler, kwargs),
        (url_path_join(base, "debug"), DebugHandler, kwargs),
        (url_path_join(base, "runs", r"([^/]+)", "events"), RunEventsHandler, kwargs),
        (url_path_join(base, "runs", r"([^/]+)", "cancel"), RunCancelHandler, kwargs),
        *models_routes(base, kwargs),
    ])

"""REST handlers for the JupyterLab Models panel, under /nbprod/api/models: each a few lines over
``nbprod.lifecycle``, the code the CLI runs, so the panel writes the same GTO tags and records.

- The person deciding is the Jupyter server's authenticated user, never a name from the request. A
  server whose only credential is a shared token or password cannot tell people apart: there the
  record says so and keeps the name the person typed.
- Candidate ids and versions are checked against the project's refs and registry tags.
- Approve, reject, rollback and retrain take the project's run lock (``nbprod.lifecycle.exclusive``);
  while a run holds it they are refused with 409 and the CLI's one-line message.
- Retraining is ``python -m nbprod retrain --events ...``, started and followed as pipeline runs are
  (``RunRegistry.launch``; events and cancel through ``/nbprod/api/runs/<id>``).
"""

from __future__ import annotations

import asyncio
import re

import tornado.web
from jupyter_server.utils import url_path_join

from nbprod.core.errors import NbprodError

from .handlers import NbprodHandler, Refused

_CANDIDATE = re.compile(r"^c[0-9]{1,9}$")
_VERSION = re.compile(r"^v?[0-9]{1,6}\.[0-9]{1,6}\.[0-9]{1,6}$")
# SECTION.KEY=VALUE with a plain scalar value (number, word, path-like): what a form field needs, and
# nothing a shell or YAML would read as more than one value.
_SET = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_.-]*=[A-Za-z0-9_.+:/-]{1,100}$")
MAX_TEXT = 2000
MAX_NAME = 100


def shared_credential_server(identity_provider) -> bool:
    """True when the server authenticates with one shared token (or password) for everyone: Jupyter's
    own identity providers then invent an anonymous user per browser, who names nobody."""
    from jupyter_server.auth.identity import IdentityProvider, LegacyIdentityProvider, PasswordIdentityProvider

    return type(identity_provider) in (IdentityProvider, PasswordIdentityProvider, LegacyIdentityProvider)


def text_field(data: dict, key: str, what: str, required: bool, limit: int = MAX_TEXT) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Refused(400, f"{key} is required: {what}")
        return None
    if not isinstance(value, str) or len(value) > limit or "\0" in value:
        raise Refused(400, f"{key} must be text of at most {limit} characters")
    return value.strip()


class ModelsHandler(NbprodHandler):
    """Shared plumbing: the approver's identity, id checks, and 409 for the run lock."""

    async def serve(self, work) -> None:
        async def translated():
            from nbprod.lifecycle.exclusive import is_run_lock_refusal

            try:
                return await work()
            except NbprodError as exc:
                if is_run_lock_refusal(exc):
                    raise Refused(409, self.root_relative(str(exc))) from None
                raise

        await super().serve(translated)

    def approver(self, data: dict) -> tuple[str, dict]:
        """(``by`` for the record, ``identity``): who the server says is asking. A name in the request
        is used only on a shared-credential server, and then marked as typed."""
        user = self.current_user
        username = getattr(user, "username", None) or str(user)
        display = getattr(user, "display_name", "") or getattr(user, "name", "") or username
        if not shared_credential_server(self.identity_provider):
            by = username if display == username else f"{display} ({username})"
            return by, {"source": "jupyter server user", "username": username, "display_name": display}
        typed = text_field(data, "name", "this server has one shared token, so type your name for the record",
                           required=True, limit=MAX_NAME)
        if any(ch in typed for ch in "\r\n\t"):
            raise Refused(400, "name must be one line")
        return (f"{typed} (typed name; single-user token server)",
                {"source": "single-user token server", "typed_name": typed, "username": username,
                 "display_name": display})

    def user_info(self) -> dict:
        user = self.current_user
        return {"username": getattr(user, "username", str(user)),
                "display_name": getattr(user, "display_name", "") or getattr(user, "name", ""),
                "shared_token": shared_credential_server(self.identity_provider)}

    async def project_from_body(self, data: dict):
        path = data.get("path", "")
        if not isinstance(path, str):
            raise Refused(400, "path must be a string")
        return await self.project(path)

    @staticmethod
    async def candidate_id(project, value: object) -> str:
        from nbprod.lifecycle.candidates import candidate_ids

        if not isinstance(value, str) or not _CANDIDATE.fullmatch(value):
            raise Refused(400, f"{value!r} is not a candidate id (c1, c2, ...)")
        if value not in await asyncio.to_thread(candidate_ids, project.root):
            raise Refused(404, f"no candidate {value!r} in this project")
        return value

    @staticmethod
    async def version(project, value: object) -> str:
        from nbprod.lifecycle.settings import load_config
        from nbprod.lifecycle.registry import versions

        if not isinstance(value, str) or not _VERSION.fullmatch(value):
            raise Refused(400, f"{value!r} is not a version (vX.Y.Z)")
        wanted = value if value.startswith("v") else "v" + value
        model = (await asyncio.to_thread(load_config, project)).model_name
        if wanted not in {v.version for v in await asyncio.to_thread(versions, project.root, model)}:
            raise Refused(404, f"model {model!r} has no version {wanted!r}")
        return wanted


class OverviewHandler(ModelsHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work():
            from nbprod.lifecycle.overview import overview

            project = await self.project(self.get_argument("path", ""))
            data = await asyncio.to_thread(overview, project)
            active = self.runs.active(project.root.resolve())
            data.update(root=self.relative_root(project), running=active.id if active else None,
                        user=self.user_info())
            return (data,)

        await self.serve(work)


class RetrainHandler(ModelsHandler):
    """Start ``nbprod retrain`` as a run; the panel follows /nbprod/api/runs/<id>/events."""

    @tornado.web.authenticated
    async def post(self) -> None:
        async def work():
            from nbprod.lifecycle.candidates import parse_overrides

            data = self.body()
            project = await self.project_from_body(data)
            note = text_field(data, "note", "why this candidate is trained", required=False) or ""
            overrides = data.get("set", [])
            if not isinstance(overrides, list) or len(overrides) > 20 or \
                    not all(isinstance(o, str) and _SET.fullmatch(o) for o in overrides):
                raise Refused(400, "set must be a list of at most 20 SECTION.KEY=VALUE, each value a number "
                                   "or a word (letters, digits, . _ + - : /)")
            await asyncio.to_thread(parse_overrides, project.root, overrides)  # the CLI's check, before starting
            root = project.root.resolve()
            if self.runs.active(root) is not None:
                raise Refused(409, "a run is already going in this project; cancel it or wait")
            # "--opt=value" keeps a value that starts with "-" from being read as an option.
            run = self.runs.launch(root, ["retrain", f"--note={note}", *(f"--set={o}" for o in overrides)])
            return ({"id": run.id, "running": True}, 202)

        await self.serve(work)


class ApproveHandler(ModelsHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        async def work():
            from nbprod.lifecycle.decisions import approve

            data = self.body()
            project = await self.project_from_body(data)
            candidate = await self.candidate_id(project, data.get("candidate"))
            note = text_field(data, "note", "why this candidate goes to production", required=True)
            override = text_field(data, "override", "", required=False)
            by, identity = self.approver(data)
            done = await asyncio.to_thread(approve, project, candidate, by, note, override, False, identity)
            return ({"version": done.version.version, "tag": done.version.tag, "assignment": done.assignment_tag,
                     "previous": done.previous, "by": by},)

        await self.serve(work)


class RejectHandler(ModelsHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        async def work():
            from nbprod.lifecycle.decisions import reject

            data = self.body()
            project = await self.project_from_body(data)
            candidate = await self.candidate_id(project, data.get("candidate"))
            note = text_field(data, "note", "why the candidate is rejected", required=True)
            by, identity = self.approver(data)
            tag = await asyncio.to_thread(reject, project, candidate, by, note, identity)
            return ({"tag": tag, "by": by},)

        await self.serve(work)


class RollbackHandler(ModelsHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        async def work():
            from nbprod.lifecycle.decisions import rollback

            data = self.body()
            project = await self.project_from_body(data)
            version = await self.version(project, data.get("version"))
            note = text_field(data, "note", "why production goes back to this version", required=True)
            by, identity = self.approver(data)
            done = await asyncio.to_thread(rollback, project, version, by, note, identity)
            return ({"version": done.version.version, "tag": done.version.tag, "assignment": done.assignment_tag,
                     "previous": done.previous, "kept": done.kept.version if done.kept else None, "by": by},)

        await self.serve(work)


class VersionHandler(ModelsHandler):
    """A version's lineage, and what rolling back to it would change in the working tree."""

    @tornado.web.authenticated
    async def get(self, version_text: str) -> None:
        async def work():
            from nbprod.lifecycle.overview import version_details

            project = await self.project(self.get_argument("path", ""))
            version = await self.version(project, version_text)
            return ((await asyncio.to_thread(version_details, project, version)).to_dict(),)

        await self.serve(work)


class ReportHandler(ModelsHandler):
    """A candidate's comparison report. It lives under .nbprod/ (hidden from Jupyter's file views), so
    it is served here, as a page without scripts."""

    @property
    def content_security_policy(self) -> str:
        return "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"

    @tornado.web.authenticated
    async def get(self, candidate: str) -> None:
        from nbprod.lifecycle.candidates import CANDIDATES_DIR

        try:
            project = await self.project(self.get_argument("path", ""))
            candidate = await self.candidate_id(project, candidate)
        except Refused as exc:
            self.reply({"message": exc.message}, exc.status)
            return
        except NbprodError as exc:
            self.reply({"message": self.root_relative(str(exc))}, 400)
            return
        report = project.root / CANDIDATES_DIR / candidate / "comparison.html"
        if not report.is_file():
            self.reply({"message": f"candidate {candidate} has no comparison report here"}, 404)
            return
        self.finish(report.read_bytes(), set_content_type="text/html; charset=utf-8")


def models_routes(base: str, kwargs: dict) -> list[tuple]:
    """The Models panel's routes under ``base`` (/nbprod/api), for ``setup_handlers``."""
    models = url_path_join(base, "models")
    return [
        (models, OverviewHandler, kwargs),
        (url_path_join(models, "retrain"), RetrainHandler, kwargs),
        (url_path_join(models, "approve"), ApproveHandler, kwargs),
        (url_path_join(models, "reject"), RejectHandler, kwargs),
        (url_path_join(models, "rollback"), RollbackHandler, kwargs),
        (url_path_join(models, "versions", r"([^/]+)"), VersionHandler, kwargs),
        (url_path_join(models, "candidates", r"([^/]+)", "report"), ReportHandler, kwargs),
    ]

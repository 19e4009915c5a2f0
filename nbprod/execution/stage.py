"""``nbprod exec STAGE``: run one stage notebook with Papermill; write the executed notebook and metrics.

This is the ``cmd`` of every nbprod stage in dvc.yaml, so it is on the hot path of each run: heavy
imports happen only once the stage is known to be valid, the stage's (fresh) kernel is launched
before Papermill is imported so that both start-ups overlap, and optional imports that Papermill
never needs for local files are kept out (see ``import_papermill``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, UTC
from pathlib import Path

from ..notebooks.analysis import literal_assignments
from ..notebooks.rlang import is_r, r_literal, r_literal_assignments
from ..executed.cellerror import describe as describe_error, failed_cell_index, has_error_output, printed_error
from ..notebooks.carry import DEFINITIONS_TAG, PRELUDE_TAG
from ..notebooks.compile import COMMIT_TAG, LOAD_TAG, SAVE_TAG, STATE_FILE
from ..core.errors import NbprodError, StageFailed
from .events import emit
from .kernel import describe as _kernel_start, start_kernel as _start_kernel, stop_kernel as _stop_kernel
from ..notebooks.notebook import atomic_write, cell_source, code_cell, dumps_notebook, read_notebook
from ..core.proc import git_output
from ..core.provenance import key_packages
from ..core.stagerun import EventKind, RecordStatus, StageRun, StageError, StageState
from ..core.project import METRICS_DIR, REPORTS_DIR, STAGES_DIR, Project, find_project
from ..notebooks.tags import is_valid_name


def exec_stage(name: str, project: Project | None = None) -> StageRun:
    """Run stage ``name``'s notebook; write ``reports/NAME.ipynb`` (with its run record) and
    ``metrics/NAME.json``; return the record. A failing cell raises StageFailed after writing."""
    from .lifeline import watch_run

    watch_run()
    project = project or find_project()
    root = project.root
    if not is_valid_name(name):
        raise NbprodError(f"{name!r} is not a stage name", root / "dvc.yaml", fix="run 'nbprod status' to list stages")
    stage_path = root / STAGES_DIR / f"{name}.ipynb"
    if not stage_path.is_file():
        raise NbprodError(f"no generated notebook for stage {name!r}", stage_path.relative_to(root),
                          fix="run 'nbprod compile' first")
    nb = read_notebook(stage_path, stage_path.relative_to(root).as_posix())
    meta = nb.get("metadata", {}).get("nbprod", {})
    source_nb = meta.get("notebook", "")
    section = meta.get("section", "")
    params = _stage_params(root, nb, section)
    sources = _source_cells(root, name, nb)
    executed = _prepare(nb, params, sources)
    out_path = root / REPORTS_DIR / f"{name}.ipynb"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cells = sum(1 for c in executed["cells"] if c["cell_type"] == "code")
    record = StageRun(stage=name, notebook=source_nb, params=params, **_git_state(root),
                       python=sys.version.split()[0], packages=key_packages())
    started = time.time()
    record.started = _iso(started)
    emit(EventKind.STAGE_START, stage=name, cells=cells, notebook=source_nb)
    _log(f"nbprod: stage {name} ({source_nb}), {cells} cells")
    os.environ["NBPROD_ROOT"] = str(root)
    cwd = (root / source_nb).parent if source_nb else root
    error = None
    kernel_name = stage_kernel(nb, project)
    kernel = _PRESTARTED.pop((kernel_name, str(cwd)), None) or _start_kernel(kernel_name, cwd, _imports(nb))
    record.kernel = _kernel_start(kernel)
    executed["metadata"]["nbprod"] = record.to_metadata()  # what an interrupted run leaves
    try:
        _run_papermill(executed, out_path, kernel_name, cwd, name, cells, kernel)
    except _CellFailed as failed:
        error = failed
    finally:
        _stop_kernel(kernel)
    ended = time.time()
    result_nb = json.loads(out_path.read_text(encoding="utf-8"))
    record.ended, record.duration = _iso(ended), round(ended - started, 3)
    record.status = RecordStatus.FAILED if error else RecordStatus.OK
    if error:
        record.error = StageError(error.source_cell, error.ename, error.evalue)
    result_nb["metadata"]["nbprod"] = record.to_metadata()
    atomic_write(out_path, dumps_notebook(result_nb))
    rel_out = out_path.relative_to(root).as_posix()
    if error:
        where = f"{source_nb} cell {error.source_cell}" if error.source_cell else f"{error.where}"
        if os.environ.get("NBPROD_WORKER"):  # set by the Dask executor: which machine to look at
            where += f" on Dask worker {os.environ['NBPROD_WORKER']}"
        what = describe_error(error.ename, error.evalue)
        summary = (f"stage {name!r} failed in {where}: {what}{'' if what.endswith('.') else '.'} "
                   f"Partially executed notebook: {rel_out}")
        emit(EventKind.STAGE_END, stage=name, state=StageState.FAILED, duration=record.duration, message=summary,
             notebook=rel_out, cell=error.source_cell)
        raise StageFailed(name, " ".join(summary.split()), rel_out)
    from ..executed.scraps import numeric_metrics, read_scraps

    metrics = numeric_metrics(read_scraps(result_nb, include_frames=False))
    metrics_path = root / METRICS_DIR / f"{name}.json"
    atomic_write(metrics_path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    emit(EventKind.STAGE_END, stage=name, state=StageState.RAN, duration=record.duration, metrics=metrics,
         notebook=rel_out, report=f"{REPORTS_DIR}/{name}.html")
    _log(f"nbprod: stage {name} done in {record.duration:.1f}s")
    return record


def _stage_params(root: Path, nb: dict, section: str) -> dict:
    """The values of the keys this stage reads, taken from params.yaml (falling back to the notebook)."""
    cell = next((c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    defaults, _ = (r_literal_assignments if _is_r(nb) else literal_assignments)(cell_source(cell))
    values = dict(defaults)
    params_file = root / "params.yaml"
    if params_file.is_file() and defaults:
        # YAML 1.2, as DVC and compile read it: PyYAML's 1.1 would turn "yes", "on", 1_000 or 12:30
        # into other values than the ones DVC tracks.
        from ruamel.yaml import YAML, YAMLError

        try:
            doc = YAML(typ="safe", pure=True).load(params_file.read_text(encoding="utf-8")) or {}
        except YAMLError as exc:
            raise NbprodError(f"is not valid YAML ({str(exc).splitlines()[0]})", "params.yaml",
                              fix="correct params.yaml or restore it with git") from None
        section_values = doc.get(section, {}) if isinstance(doc, dict) else {}
        if isinstance(section_values, dict):
            for key in defaults:
                if key in section_values:
                    values[key] = section_values[key]
                    check_param(f"{section}.{key}", values[key])
    return values


def check_param(name: str, value: object) -> None:
    """A params.yaml value the kernel can receive exactly: what a parameters cell may hold."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list):
        for item in value:
            check_param(name, item)
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for item in value.values():
            check_param(name, item)
        return
    kind = {"date": "a date", "datetime": "a date and time", "bytes": "binary data", "set": "a set",
            "dict": "a mapping with non-string keys"}.get(type(value).__name__, f"a {type(value).__name__}")
    raise NbprodError(f"{name} is {kind}, which a notebook parameter cannot hold", "params.yaml",
                      fix="quote it, or use a number, string, boolean, null, list or mapping")


def _source_cells(root: Path, name: str, nb: dict) -> list[int | None]:
    """For each cell of the stage notebook, its cell number in the source notebook (None if generated)."""
    try:
        state = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))["stages"][name]
    except (OSError, ValueError, KeyError):
        state = {}
    shared = iter(state.get("shared", []))
    own = iter(state.get("cells", []))
    numbers: list[int | None] = []
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or {LOAD_TAG, SAVE_TAG, PRELUDE_TAG, DEFINITIONS_TAG, COMMIT_TAG} & set(tags):
            numbers.append(None)
        elif "shared" in tags:
            numbers.append(next(shared, None))
        elif "parameters" in tags:
            numbers.append(state.get("parameters"))
        else:
            numbers.append(next(own, None))
    return numbers


def _prepare(nb: dict, params: dict, sources: list[int | None]) -> dict:
    """The notebook to execute: source cell numbers in metadata, and params.yaml values injected."""
    from ..notebooks.compile import py_literal

    executed = json.loads(json.dumps(nb))
    cells = []
    for cell, number in zip(executed["cells"], sources):
        if number is not None:
            cell.setdefault("metadata", {})["nbprod"] = {"source_cell": number}
        cells.append(cell)
        if "parameters" in cell.get("metadata", {}).get("tags", []) and params:
            lines = ["# Parameters from params.yaml, injected by nbprod exec"]
            if _is_r(nb):
                lines += [f"{key} <- {r_literal(value, key)}" for key, value in params.items()]
            else:
                lines += [f"{key} = {py_literal(value)}" for key, value in params.items()]
            cells.append(code_cell("\n".join(lines), ["injected-parameters"]))
    executed["cells"] = cells
    return executed


class _CellFailed(Exception):
    def __init__(self, source_cell: int | None, where: str, ename: str, evalue: str):
        super().__init__(evalue)
        self.source_cell, self.where, self.ename, self.evalue = source_cell, where, ename, evalue


SNAPSHOT_EVERY = 1.0  # seconds between in-progress writes of the executed notebook


def import_papermill():
    """Papermill, nbformat and the engine class, without the optional imports nothing here uses
    (nbprod.core.lightimports)."""
    from ..core.lightimports import without_optional_imports

    with without_optional_imports():
        import nbformat
        import papermill
        from papermill.engines import NBClientEngine, papermill_engines

    _cached_validators()
    return nbformat, papermill, NBClientEngine, papermill_engines


def _cached_validators() -> None:
    """nbformat validates the notebook at every Papermill save with fastjsonschema, which first turns
    the schema into Python code and compiles it, in every process, twice (strict and relaxed
    schemas). The compiled code is the same every time, so it is kept, marshalled, in the user's
    cache folder and loaded into nbformat's validator cache. Same checks, same results."""
    import copy
    import hashlib
    import marshal

    try:
        import fastjsonschema
        import nbformat.json_compat as compat
        import nbformat.validator as validator
        from nbformat import v4
    except ImportError:
        return
    cls = compat.get_current_validator()
    if cls is not compat.FastJsonSchemaValidator:
        return
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nbprod"
    for relax in (False, True):
        key = (cls.name, 4, v4.nbformat_minor, relax)
        if key in validator.validators:
            continue
        try:
            schema = copy.deepcopy(validator._get_schema_json(v4, version=4, version_minor=v4.nbformat_minor))
            if relax:
                schema = validator._relax_additional_properties(schema)
            digest = hashlib.sha256(json.dumps([schema, sys.version, fastjsonschema.VERSION],
                                               sort_keys=True).encode()).hexdigest()[:20]
            path = folder / f"nbformat-schema-{digest}.marshal"
            try:
                code = marshal.loads(path.read_bytes())
            except (OSError, ValueError, EOFError, TypeError):
                code = compile(fastjsonschema.compile_to_code(schema), f"<nbformat schema {digest}>", "exec")
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    atomic_write(path, marshal.dumps(code))
                except OSError:
                    pass  # no cache folder: compiled again next time, nothing else changes
            namespace: dict = {}
            exec(code, namespace)  # noqa: S102 - code generated by fastjsonschema from nbformat's schema
            instance = cls.__new__(cls)
            compat.JsonSchemaValidator.__init__(instance, schema)
            instance._validator = namespace["validate"]
            validator.validators[key] = instance
        except Exception:  # noqa: BLE001 - any surprise: leave it to nbformat, as without the cache
            continue


# Kernels started ahead of their stage by prestart_kernel (in a nbprod.execution.prestart process), by
# (kernel name, working directory); exec_stage takes the one it would otherwise start itself.
_PRESTARTED: dict[tuple[str, str], object] = {}


def prestart_kernel(name: str, project: Project | None = None) -> None:
    """Start, now, the fresh kernel that ``exec_stage(name)`` will run in: same kernel spec, working
    directory, arguments and environment (NBPROD_ROOT included) as exec_stage would give it."""
    project = project or find_project()
    root = project.root
    stage_path = root / STAGES_DIR / f"{name}.ipynb"
    if not is_valid_name(name) or not stage_path.is_file():
        return  # exec_stage reports it
    nb = read_notebook(stage_path, stage_path.relative_to(root).as_posix())
    source_nb = nb.get("metadata", {}).get("nbprod", {}).get("notebook", "")
    cwd = (root / source_nb).parent if source_nb else root
    os.environ["NBPROD_ROOT"] = str(root)
    kernel_name = stage_kernel(nb, project)
    _PRESTARTED[(kernel_name, str(cwd))] = _start_kernel(kernel_name, cwd, _imports(nb))


def stage_kernel(nb: dict, project: Project) -> str:
    """The kernel compile chose for this stage notebook (its source notebook's own, else the project's)."""
    name = (nb.get("metadata", {}).get("kernelspec") or {}).get("name")
    return name if isinstance(name, str) and name else project.kernel


def _is_r(nb: dict) -> bool:
    return is_r((nb.get("metadata", {}).get("kernelspec") or {}).get("language"))


def _imports(nb: dict) -> list[str]:
    """The third-party modules the stage notebook imports (what a pool zygote should load first)."""
    from ..notebooks.analysis import sanitize

    if _is_r(nb):
        return []
    from .kernelpool import preload_modules

    return preload_modules([sanitize(cell_source(c))[0] for c in nb["cells"] if c["cell_type"] == "code"])


def stop_prestarted() -> None:
    for manager in list(_PRESTARTED.values()):
        _stop_kernel(manager)
    _PRESTARTED.clear()


def _run_papermill(executed: dict, out_path: Path, kernel: str, cwd: Path, stage: str, cells: int,
                   manager=None) -> None:
    nbformat, papermill, NBClientEngine, papermill_engines = import_papermill()
    from papermill.exceptions import PapermillExecutionError

    class ProgressEngine(NBClientEngine):
        """Papermill's nbclient engine, reporting each cell to the run's events.

        Papermill rewrites the whole executed notebook when each cell starts and ends (a cost
        per cell). Here those in-progress snapshots are written at most
        once a second; the notebook as it started is written at once, and Papermill always
        writes the final notebook, and the failed one before raising."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            code_index = {id(c): i for i, c in enumerate(c for c in nb_man.nb.cells if c.cell_type == "code")}
            original_start, original_save = nb_man.cell_start, nb_man.save
            last_save = [time.monotonic()]

            def cell_start(cell, cell_index=None, **kw):
                emit(EventKind.CELL, stage=stage, index=code_index.get(id(cell), 0) + 1, cells=cells)
                return original_start(cell, cell_index, **kw)

            def save(**kw):
                if time.monotonic() - last_save[0] >= SNAPSHOT_EVERY:
                    original_save(**kw)
                    last_save[0] = time.monotonic()

            nb_man.cell_start, nb_man.save = cell_start, save
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("nbprod", ProgressEngine)
    node = nbformat.from_dict(executed)
    try:
        papermill.execute_notebook(node, str(out_path), parameters=None, engine_name="nbprod",
                                   kernel_name=kernel, cwd=str(cwd), progress_bar=False,
                                   request_save_on_cell_execute=True, log_output=False, km=manager)
    except PapermillExecutionError as exc:
        source = None
        where = "a generated cell"
        ename, evalue = exc.ename, str(exc.evalue)
        done = json.loads(out_path.read_text(encoding="utf-8"))
        index = failed_cell_index(done)
        if index is not None:
            cell = done["cells"][index]
            source = cell.get("metadata", {}).get("nbprod", {}).get("source_cell")
            tags = cell.get("metadata", {}).get("tags", [])
            where = "the nbprod outputs cell" if SAVE_TAG in tags else \
                "the nbprod inputs cell" if LOAD_TAG in tags else \
                "the cell of imports carried from earlier stages" if PRELUDE_TAG in tags else \
                "the cell of functions and classes carried from earlier stages" if DEFINITIONS_TAG in tags else where
            if not has_error_output(cell):
                # No error output (a UsageError, an error a magic printed): Papermill's exception is a
                # bare "CellExecutionError: "; the kernel's own message is what the cell printed.
                ename, evalue = printed_error(cell)
        raise _CellFailed(source, where, ename, evalue) from None


def _git_state(root: Path) -> dict:
    commit = git_output(root, "rev-parse", "HEAD")
    status = git_output(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")


def _log(message: str) -> None:
    if not os.environ.get("NBPROD_EVENTS"):
        print(message, file=sys.stderr, flush=True)

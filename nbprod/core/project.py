"""Where a project lives and what it is configured with (``[tool.nbprod]`` in pyproject.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import NbprodError

PYPROJECT = "pyproject.toml"
GENERATED_DIR = ".nbprod"
PASSED_DIR = ".nbprod/data"            # variables passed between stages (nbprod.artifacts writes them)
STAGES_DIR = ".nbprod/stages"
RUNS_DIR = ".nbprod/runs"              # one folder per run: events.jsonl, dvc.log, stage logs
CANDIDATES_DIR = ".nbprod/candidates"  # retrain candidates' records and comparison reports
PREDICTIONS_DIR = ".nbprod/serve/predictions"  # nbprod serve's prediction log (default)
IMAGE_CONTEXT_DIR = ".nbprod/image/context"  # nbprod image build's staged build context (removed after)
REPORTS_DIR = "reports"
METRICS_DIR = "metrics"
DEBUG_DIR = "nbprod-debug"
ENVIRONMENT_FILE = ".nbprod/environment.json"  # the environment of the last run that produced outputs
SQL_DIR = ".nbprod/sql"                # per literal query: <id>.json (committed) and <id>.parquet (DVC)
DB_LOG = ".nbprod/db/log.jsonl"        # what runs did to database tables (git-ignored, append-only)
_SKIP_DIRS = {".git", ".dvc", ".nbprod", ".venv", "venv", "node_modules", "reports", "__pycache__",
              ".ipynb_checkpoints", ".dvcstore", DEBUG_DIR, "records"}


@dataclass
class Project:
    root: Path
    notebook_paths: list[str] = field(default_factory=lambda: ["."])
    kernel: str = "python3"
    gates: dict = field(default_factory=dict)
    kernel_pool: bool = True                # fork stage kernels from a warm process (nbprod.execution.kernelpool)
    preload: bool | list[str] = True        # what that process imports first: the stages' imports, none, + these
    dask: dict = field(default_factory=dict)  # [tool.nbprod.dask]: scheduler = "tcp://HOST:PORT"
    executor: str = "local"                 # where `nbprod run` (CLI, Lab, widgets) runs stages by default

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def notebooks(self) -> list[Path]:
        """The source notebooks, in a stable order (sorted by project-relative path)."""
        found: set[Path] = set()
        for entry in self.notebook_paths:
            base = (self.root / entry).resolve()
            if not _inside(base, self.root):
                raise NbprodError(f"notebooks entry {entry!r} is outside the project", "pyproject.toml",
                                  fix="list folders inside the project under [tool.nbprod] notebooks")
            if base.is_file() and base.suffix == ".ipynb":
                found.add(base)
            elif base.is_dir():
                for path in base.rglob("*.ipynb"):
                    parts = path.relative_to(base).parts[:-1]
                    if not any(p in _SKIP_DIRS or p.startswith(".") for p in parts):
                        found.add(path)
        return sorted(found, key=lambda p: p.relative_to(self.root).as_posix())


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def find_project(start: Path | str | None = None) -> Project:
    """The project containing ``start``: the nearest folder holding a ``.dvc`` directory."""
    here = Path(start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return load_project(folder)
    raise NbprodError("is not inside a DVC project (no .dvc folder here or above)", here,
                      fix="run 'nbprod init NAME' to create a project, or 'dvc init' in this folder")


def read_config(root: Path) -> dict:
    """The project's ``[tool.nbprod]`` table ({} without pyproject.toml or the table): the one reader
    of the project's settings. Each part of nbprod checks the keys it owns, naming them as
    ``[tool.nbprod] KEY`` (or ``[tool.nbprod.TABLE] KEY``) in ``PYPROJECT`` with the fix."""
    path = Path(root) / PYPROJECT
    if not path.is_file():
        return {}
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("nbprod", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NbprodError(f"is not valid TOML ({exc})", PYPROJECT, fix="correct the syntax of pyproject.toml") from None
    if not isinstance(config, dict):
        raise NbprodError("tool.nbprod must be a table", PYPROJECT, fix="write a [tool.nbprod] section")
    return config


def load_project(root: Path) -> Project:
    root = root.resolve()
    config = read_config(root)
    notebooks = config.get("notebooks", ["."])
    if isinstance(notebooks, str):
        notebooks = [notebooks]
    if not isinstance(notebooks, list) or not all(isinstance(n, str) for n in notebooks):
        raise NbprodError("[tool.nbprod] notebooks must be a list of paths", "pyproject.toml",
                          fix='write notebooks = ["notebooks"]')
    kernel = config.get("kernel", "python3")
    if not isinstance(kernel, str) or not kernel:
        raise NbprodError("[tool.nbprod] kernel must be a kernel name", PYPROJECT, fix='write kernel = "python3"')
    gates = config.get("gates", {})
    kernel_pool = config.get("kernel_pool", True)
    if not isinstance(kernel_pool, bool):
        raise NbprodError("[tool.nbprod] kernel_pool must be true or false", "pyproject.toml",
                          fix="write kernel_pool = false to start every stage's kernel as a new process")
    preload = config.get("preload", True)
    if not (isinstance(preload, bool) or isinstance(preload, list) and all(
            isinstance(m, str) and m and all(p.isidentifier() for p in m.split(".")) for m in preload)):
        raise NbprodError("[tool.nbprod] preload must be true, false or a list of module names", "pyproject.toml",
                          fix='write preload = ["pandas", "sklearn"] (added to the stages\' own imports) or false')
    dask = config.get("dask", {})
    if not isinstance(dask, dict) or not isinstance(dask.get("scheduler", ""), str):
        raise NbprodError("[tool.nbprod.dask] scheduler must be an address string", "pyproject.toml",
                          fix='write [tool.nbprod.dask] scheduler = "tcp://HOST:8786"')
    executor = config.get("executor", "local")
    if not isinstance(executor, str):  # the name is checked against the registered executors when a run starts
        raise NbprodError(f"[tool.nbprod] executor {executor!r} is not a name", "pyproject.toml",
                          fix='write executor = "local" or executor = "dask"')
    return Project(root=root, notebook_paths=notebooks, kernel=kernel, gates=gates, kernel_pool=kernel_pool, dask=dask,
                   executor=executor,
                   preload=preload)

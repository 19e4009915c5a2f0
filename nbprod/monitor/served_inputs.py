"""Drift of the inputs ``nbprod serve`` answered against the training data of the model version in
production, as ``served.drift.*`` metrics kept beside a record (``served_drift.json``).

The served inputs come from the prediction log (``[tool.nbprod.serve] log_dir``, read by
``serve.predlog.served_inputs``), limited by ``[tool.nbprod.monitor] served_rows`` / ``served_hours``.
The reference is the one the serve contract is built from: ``serve.loader.resolve`` names the
version's training data in its dvc.lock and ``serve.served.first_frame`` reads it from the DVC cache,
checked by hash. The statistics are ``contracts.drift.compute_drift`` with ``[tool.nbprod.drift]``,
so ``served.drift.share`` means what ``drift.share`` means in a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..core.errors import NbprodError
from ..core.project import Project
from .settings import ServedWindow

PREFIX = "served."
CHECKED, NO_LOG, NOT_CHECKED = "checked", "no log", "not checked"


@dataclass
class ServedDrift:
    status: str                      # checked | no log | not checked
    note: str                        # one line for a reader: what was compared, or why nothing was
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"evaluated": datetime.now(UTC).isoformat(timespec="seconds"), "status": self.status,
                "note": self.note, "metrics": self.metrics, **self.details}


def served_drift(project: Project, window: ServedWindow, now: datetime | None = None) -> ServedDrift:
    """Compare the newest served inputs with the production version's training data; never raises
    for a missing log, version or cache entry (the outcome says why nothing was compared)."""
    from ..serve.predlog import log_files
    from ..serve.settings import load_settings
    from .records import model_settings

    model, _ = model_settings(project.root)
    try:
        folder = project.root / load_settings(project.root, model).log_dir
    except NbprodError as exc:  # a bad [tool.nbprod.serve] must not cost the record its verdict
        return ServedDrift(NOT_CHECKED, f"the prediction log cannot be found: {exc}")
    where = folder.relative_to(project.root).as_posix() if folder.is_relative_to(project.root) else str(folder)
    if not folder.is_dir() or not log_files(folder):
        return ServedDrift(NO_LOG, f"no prediction log in {where} (nbprod serve writes it)")
    from ..serve.predlog import served_inputs

    since = (now or datetime.now(UTC)) - timedelta(hours=window.hours) if window.hours else None
    current = served_inputs(folder, "prod", window.rows, since)
    if current.empty:
        return ServedDrift(NOT_CHECKED, f"the prediction log in {where} holds no served inputs"
                                        + (f" from the last {window.hours:g} hours" if since else "")
                                        + " (log_inputs = \"values\" logs them)")
    try:
        reference, version, sources = _training_data(project, model, [str(c) for c in current.columns])
    except NbprodError as exc:
        return ServedDrift(NOT_CHECKED, f"no training data to compare with: {exc}")
    if reference is None:
        return ServedDrift(NOT_CHECKED, f"the training data of {version} ({', '.join(sources) or 'none'}) "
                                        "lacks the served columns")
    from ..contracts.drift import compute_drift, load_drift_config

    report = compute_drift(reference, current, [str(c) for c in current.columns], load_drift_config(project.root))
    metrics = {PREFIX + name: value for name, value in report.metrics().items()}
    note = (f"{len(current)} served rows from {where} vs the training data of {version} ({', '.join(sources)}): "
            f"{len(report.drifted_columns)} of {sum(c.tested for c in report.columns)} columns drifted")
    details = {"version": version, "training_data": sources, "log": where, "rows": len(current),
               "window": {"rows": window.rows, "hours": window.hours}, "report": report.to_dict()}
    return ServedDrift(CHECKED, note, metrics, details)


def _training_data(project: Project, model: str, columns: list[str]):
    """The production version's training frame (as the serve contract reads it), its version, its paths."""
    from ..serve.loader import resolve
    from ..serve.loaded import first_frame

    info = resolve(project.root, model)
    return first_frame(project.root, info.training, columns), info.version, [d.path for d in info.training]

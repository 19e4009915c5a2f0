"""Live quality: the joined rows of the prediction window as ``live.*`` metrics per variant and per
version (kept by ``nbprod monitor`` beside the latest record, ``live_quality.json``), with the
confidence-based estimates and the A/B verdict.

Names: ``live.prod.F`` and ``live.challenger.F`` are the newest version answering as that variant
(``live.F`` = ``live.prod.F``, what a rollback rule watches); ``live.versions.<version>.F`` every
version seen in the window; ``live.ab.*`` the challenger minus production. Quality figures need
``min_outcomes`` labelled rows; counts, coverage, delays and the ``estimated_*`` figures do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nbprod.core.errors import NbprodError
from nbprod.feedback.quality import ab_verdict, classifier_figures, estimated_figures, regressor_figures
from nbprod.feedback.settings import FeedbackSettings

PREFIX = "live."
CHECKED, NO_LOG, NOT_CHECKED = "checked", "no log", "not checked"


@dataclass
class LiveQuality:
    status: str
    note: str
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"evaluated": datetime.now(UTC).isoformat(timespec="seconds"), "status": self.status,
                "note": self.note, "metrics": self.metrics, **self.details}


@dataclass
class Group:
    """The rows one version answered (or scored in shadow) as one variant, as numpy arrays."""
    variant: str
    version: str
    shadow: bool
    newest: object
    predicted: object            # class codes, or values for a regressor
    truth: object                # same, NaN / -1 where no outcome is known
    labelled: object             # bool mask
    proba: object | None
    delay_hours: object
    classes: list | None

    @property
    def n(self) -> int:
        return len(self.predicted)


def prediction_folder(root: Path) -> Path:
    from nbprod.monitor.records import model_settings
    from nbprod.serve.settings import load_settings

    model, _ = model_settings(root)
    return root / load_settings(root, model).log_dir


def live_quality(root: Path, settings: FeedbackSettings, now: datetime | None = None) -> LiveQuality:
    """Join and measure; never raises for a missing log (the outcome says why nothing was measured)."""
    from nbprod.serve.predlog import log_files

    try:
        folder = prediction_folder(root)
    except NbprodError as exc:
        return LiveQuality(NOT_CHECKED, f"the prediction log cannot be found: {exc}")
    where = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)
    if not folder.is_dir() or not log_files(folder):
        return LiveQuality(NO_LOG, f"no prediction log in {where} (nbprod serve writes it)")
    return measure(folder, where, settings, now)


def measure(folder: Path, where: str, settings: FeedbackSettings, now: datetime | None = None) -> LiveQuality:
    """Live quality of the prediction log in ``folder`` (``where``: how to name it to a reader)."""
    from nbprod.feedback.join import join

    since = (now or datetime.now(UTC)) - timedelta(days=settings.window_days) if settings.window_days else None
    joined = join(folder, since)
    groups = split_groups(joined)
    metrics, described = {}, []
    newest = {}
    for group in groups:
        figures = group_figures(group, settings.min_outcomes)
        described.append({"variant": group.variant, "version": group.version, "shadow": group.shadow, **figures})
        for name, value in figures.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.setdefault(f"{PREFIX}versions.{group.version}.{name}", value)
        if group.variant not in newest or group.newest > newest[group.variant][0].newest:
            newest[group.variant] = (group, figures)
    for variant, (_group, figures) in newest.items():
        for name, value in figures.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{PREFIX}{variant}.{name}"] = value
                if variant == "prod":
                    metrics[f"{PREFIX}{name}"] = value
    verdict = None
    if "prod" in newest and "challenger" in newest:
        verdict = group_verdict(newest["prod"][0], newest["challenger"][0], settings.min_outcomes)
        if verdict.difference is not None:
            metrics.update({f"{PREFIX}ab.difference": verdict.difference, f"{PREFIX}ab.low": verdict.low,
                            f"{PREFIX}ab.high": verdict.high})
    labelled = joined.labelled
    note = (f"{joined.rows.num_rows} predicted rows in {where}"
            + (f" since {since.isoformat(timespec='minutes')}" if since else "")
            + f", {labelled} with an outcome; {joined.unknown} outcome(s) matched no prediction, "
            f"{joined.duplicates} replaced by a later one")
    details = {"log": where, "window_days": settings.window_days, "min_outcomes": settings.min_outcomes,
               "outcomes_read": joined.outcomes, "unknown": joined.unknown, "duplicates": joined.duplicates,
               "groups": described, "verdict": verdict.to_dict() if verdict else None,
               "prod_version": newest["prod"][0].version if "prod" in newest else None}
    return LiveQuality(CHECKED, note, metrics, details)


def split_groups(joined) -> list[Group]:
    """One Group per (variant, version, shadow) of the joined rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = joined.rows
    if not rows.num_rows:
        return []
    encoded = [pc.dictionary_encode(rows[name].combine_chunks()) for name in ("variant", "version")]
    variants, versions = (e.dictionary.to_pylist() for e in encoded)
    code = (encoded[0].indices.to_numpy().astype(np.int64) * len(versions)
            + encoded[1].indices.to_numpy()) * 2 + rows["shadow"].to_numpy(zero_copy_only=False)
    times = rows["time"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    order = np.argsort(code, kind="stable")
    bounds = np.r_[0, np.nonzero(np.diff(code[order]))[0] + 1, len(order)]
    out = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        at = order[start:end]  # ascending: the sort is stable
        combined = int(code[at[0]])
        variant, version, shadow = variants[combined // 2 // len(versions)], \
            versions[combined // 2 % len(versions)], combined % 2
        newest = int(times[at].max())
        part = rows.take(at)
        labelled = pc.is_valid(part["outcome"]).to_numpy(zero_copy_only=False)
        classes = joined.classes.get(version)
        if classes is None and not joined.label_type.startswith("float"):
            seen = pc.unique(pa.concat_arrays([part["prediction"].combine_chunks(),
                                               part["outcome"].drop_null().combine_chunks()]))
            classes = sorted(seen.to_pylist())
        if classes is not None:
            value_set = pa.array(classes, part["prediction"].type)
            predicted = pc.fill_null(pc.index_in(part["prediction"], value_set=value_set), -1).to_numpy()
            truth = pc.fill_null(pc.index_in(part["outcome"], value_set=value_set), -1).to_numpy()
            labelled &= truth >= 0
        else:
            predicted = part["prediction"].to_numpy(zero_copy_only=False).astype(float)
            truth = pc.fill_null(part["outcome"].cast(pa.float64()), float("nan")).to_numpy()
        proba = None
        if classes is not None and part["probabilities"].null_count == 0 and part.num_rows:
            flat = pc.list_flatten(part["probabilities"]).to_numpy()
            if len(flat) == part.num_rows * len(classes):
                proba = flat.reshape(part.num_rows, len(classes))
        delay = pc.subtract(part["outcome_time"], part["time"]).cast(pa.int64()).to_numpy(zero_copy_only=False)
        delay_hours = np.asarray(delay, dtype=float) / 3.6e6
        out.append(Group(variant, version, bool(shadow), newest, predicted, truth, labelled, proba,
                         delay_hours, classes))
    return out


def group_figures(group: Group, min_outcomes: int) -> dict:
    import numpy as np

    n_out = int(group.labelled.sum())
    figures: dict = {"n_predictions": group.n, "n_outcomes": n_out,
                     "coverage": n_out / group.n if group.n else 0.0}
    if n_out:
        delays = group.delay_hours[group.labelled]
        figures["label_delay_p50_hours"] = float(np.median(delays))
        figures["label_delay_p90_hours"] = float(np.quantile(delays, 0.9))
    if group.proba is not None and group.n:
        figures.update(estimated_figures(group.predicted, group.proba, len(group.classes)))
        if n_out:
            labelled = estimated_figures(group.predicted[group.labelled], group.proba[group.labelled],
                                         len(group.classes), auc=False)
            figures.update({f"{k}_labelled": v for k, v in labelled.items()})
    if n_out < min_outcomes:
        figures["quality"] = f"not enough outcomes yet ({n_out} of min_outcomes = {min_outcomes})"
        return figures
    m = group.labelled
    if group.classes is not None:
        proba = group.proba[m] if group.proba is not None else None
        figures.update(classifier_figures(group.truth[m], group.predicted[m], proba, len(group.classes)))
    else:
        figures.update(regressor_figures(group.truth[m], group.predicted[m]))
    return figures


def row_scores(group: Group):
    """Per labelled row: 1/0 correct (a classifier), or the absolute error (a regressor)."""
    import numpy as np

    m = group.labelled
    if group.classes is not None:
        return (group.predicted[m] == group.truth[m]).astype(float), "accuracy", True
    return np.abs(group.predicted[m] - group.truth[m]), "mae", False


def group_verdict(prod: Group, challenger: Group, min_outcomes: int):
    p, figure, higher = row_scores(prod)
    c, _, _ = row_scores(challenger)
    return ab_verdict(p, c, figure, higher, min_outcomes)


def attach_live(root: Path, folder: Path, rows: list[dict]) -> tuple[list[dict], LiveQuality]:
    """``nbprod compare --variants``: each variant's row gets its live figures from the outcome store
    (``live``), the challenger's row the A/B verdict (``ab_verdict``)."""
    from nbprod.feedback.settings import load_feedback_settings

    where = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)
    live = measure(folder, where, load_feedback_settings(root))
    groups = {(g["variant"], g["version"], g["shadow"]): g for g in live.details.get("groups") or []}
    verdict = live.details.get("verdict")
    for row in rows:
        figures = groups.get((row["variant"], row["version"], row["shadow"]))
        row["live"] = {k: v for k, v in figures.items() if k not in ("variant", "version", "shadow")} \
            if figures else None
        if row["variant"] == "challenger" and verdict:
            row["ab_verdict"] = verdict
    return rows, live


def print_live(live: LiveQuality) -> None:
    """Live quality per variant (estimated figures marked as such) and the verdict, in plain lines."""
    print(f"\nLive quality (outcomes joined by nbprod feedback / POST /feedback): {live.note}")
    for g in live.details.get("groups") or []:
        label = f"{g['variant']}{' (shadow)' if g['shadow'] else ''} {g['version']}"
        shown = [f"{k} {g[k]:.4g}" for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
                                             "mae", "rmse", "r2") if k in g]
        estimated = [f"{k.replace('estimated_', '')} {g[k]:.4g} (ESTIMATED from probabilities, all rows"
                     + (f"; {g[k + '_labelled']:.4g} on the labelled rows" if k + "_labelled" in g else "") + ")"
                     for k in ("estimated_accuracy", "estimated_roc_auc") if k in g]
        print(f"  {label}: {g['n_outcomes']} outcomes of {g['n_predictions']} rows ({g['coverage']:.1%})"
              + (f", label delay median {g['label_delay_p50_hours']:.3g} h" if "label_delay_p50_hours" in g else ""))
        print("    realised: " + (", ".join(shown) or g.get("quality", "-")))
        for line in estimated:
            print(f"    {line}")
    verdict = live.details.get("verdict")
    if verdict:
        print(f"A/B test: {verdict['text']}")

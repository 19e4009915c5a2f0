"""A model version loaded and ready to answer: the unpickled model, its request contract, and the
smoke prediction on a row of its own holdout that it must pass before it is served."""

from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import NbprodError
from . import contract as contracts
from .loader import ModelVersion, load_model, read_frame, schema_file


@dataclass
class LoadedModel:
    info: ModelVersion
    model: object
    contract: contracts.Contract
    smoke_record: dict
    smoke_source: str
    explainer: object | None = None        # explaining.ServedExplainer, when /explain is on and possible
    explain_error: str | None = None       # why this version cannot be explained (one line)

    @property
    def version(self) -> str:
        return self.info.version

    def predict(self, frame) -> dict:
        """Predictions (and class probabilities where the model has ``predict_proba``) as JSON lists."""
        out = {"predictions": self.model.predict(frame).tolist()}
        if hasattr(self.model, "predict_proba"):
            out["probabilities"] = self.model.predict_proba(frame).tolist()
            classes = getattr(self.model, "classes_", None)
            if classes is not None:
                out["classes"] = classes.tolist()
        return out

    def smoke(self) -> None:
        """Predict the holdout row; raise unless it gives one finite answer."""
        answer = self.predict(self.contract.frame({"records": [self.smoke_record]}))
        if len(answer["predictions"]) != 1:
            raise ValueError(f"smoke prediction returned {len(answer['predictions'])} rows for 1")
        for value in answer.get("probabilities", [[]])[0]:
            if not math.isfinite(value):
                raise ValueError("smoke prediction returned a non-finite probability")

    def describe(self) -> dict:
        return {**self.info.describe(), "contract": self.contract.describe(),
                "smoke": {"source": self.smoke_source, "passed": True},
                "predict_proba": hasattr(self.model, "predict_proba")}


def load_version(root: Path, info: ModelVersion, max_batch: int, extra_keys=frozenset()) -> LoadedModel:
    """Load ``info`` completely (model, contract, smoke row) and pass the smoke prediction, or raise."""
    model = load_model(root, info)
    features = getattr(model, "feature_names_in_", None)
    if features is None:
        raise NbprodError(f"the model of {info.tag} has no feature_names_in_ (trained without column names)",
                          info.model_path, fix="train it on a DataFrame, or declare its data schema in schemas/")
    features = [str(f) for f in features]
    training = first_frame(root, info.training, features)
    contract = _contract(root, info, features, training, max_batch, extra_keys)
    holdout = first_frame(root, info.holdout, features)
    source_frame, source = (holdout, "holdout") if holdout is not None else (training, "training data")
    if source_frame is None or not len(source_frame):
        raise NbprodError(f"{info.tag} has no readable holdout or training rows for the smoke prediction",
                          info.model_path, fix="the scoring stage should read a parquet or CSV holdout")
    record = {k: _plain(v) for k, v in source_frame[features].iloc[0].items()}
    loaded = LoadedModel(info, model, contract, record, f"{source} row 0")
    loaded.smoke()
    return loaded


def _plain(value):
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    return None if value is not None and not isinstance(value, (str, bool)) and value != value else value


def first_frame(root: Path, refs, features: list[str]):
    """The first of ``refs`` read from the cache that holds every column of ``features`` (None if none does)."""
    for ref in refs:
        frame = read_frame(root, ref)
        if frame is not None and all(f in frame.columns for f in features):
            return frame
    return None


def _contract(root: Path, info: ModelVersion, features, training, max_batch: int, extra_keys):
    declared = schema_file(root, info)
    if declared is not None:
        try:
            from ..contracts.schemas import load_schema
        except ImportError:
            load_schema = None
        if load_schema is not None:
            rel, data = declared
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / Path(rel).name
                path.write_bytes(data)
                schema = load_schema(path)
            return contracts.from_schema(features, schema, training, max_batch, f"{rel} at {info.tag}",
                                         hashlib.sha256(data).hexdigest(), extra_keys)
    if training is None:
        return contracts.from_features(features, max_batch, extra_keys)
    return contracts.from_training(features, training, max_batch, extra_keys)

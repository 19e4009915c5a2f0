"""``POST /feedback`` of ``nbprod serve``: outcomes checked against the served models' classes (or as
numbers for a regressor), then queued to the outcome log's own writer thread, so a burst of feedback
never holds up /predict beyond the JSON parsing of its own request.

Body: one ``{"request_id" | "key", "outcome", "row"?, "time"?}``, a list of them, or
``{"outcomes": [...]}``. All valid items are stored; when some are not, the answer is 422 naming the
first bad field and listing every rejected item (resending the whole batch is safe: for the same
row, the outcome received last wins). Whether an id was ever answered is told at join time
(``nbprod feedback status``, ``nbprod monitor``), since another worker may have answered it.
"""

from __future__ import annotations

from collections.abc import Callable

from nbprod.feedback.settings import FeedbackSettings
from nbprod.feedback.store import OutcomeKind, OutcomeLog, Rejected, now_text, outcome_entry

MAX_ITEMS = 10_000


def kind_of(models) -> OutcomeKind:
    """Classes of every served model (prod, challenger) together; a model without classes_ is a regressor."""
    classes: list = []
    for loaded in models:
        for value in getattr(loaded.model, "classes_", None) if hasattr(loaded.model, "classes_") else []:
            value = value.item() if hasattr(value, "item") else value
            if value not in classes:
                classes.append(value)
    return OutcomeKind(tuple(classes)) if classes else OutcomeKind(None)


class FeedbackSink:
    def __init__(self, folder, settings, feedback: FeedbackSettings, on_drop: Callable[[], None] = lambda: None):
        self.log = OutcomeLog(folder, settings.log_max_bytes, settings.log_keep, settings.log_queue, on_drop)
        self.inputs_mode = settings.log_inputs
        self.feedback = feedback

    def start(self) -> None:
        self.log.start()

    def stop(self) -> None:
        self.log.close()

    def receive(self, body, models) -> tuple[int, dict]:
        """(HTTP status, answer) for one request body."""
        items = body.get("outcomes") if isinstance(body, dict) and "outcomes" in body else body
        items = items if isinstance(items, list) else [items]
        if not items:
            return 422, {"error": "no outcomes given", "field": "outcomes", "stored": 0}
        if len(items) > MAX_ITEMS:
            return 413, {"error": f"more than {MAX_ITEMS} outcomes in one request", "field": "outcomes",
                         "stored": 0}
        kind, received = kind_of(models), now_text()
        rejected: list[Rejected] = []
        dropped_before = self.log.dropped
        failing = self.log.error  # the writer's last write failed (a full disk): these may not be stored
        stored = 0
        for index, item in enumerate(items):
            entry = outcome_entry(item, index, kind, self.inputs_mode, "post", received)
            if isinstance(entry, Rejected):
                rejected.append(entry)
                continue
            self.log.submit(entry)
            stored += 1
        dropped = self.log.dropped - dropped_before
        answer = {"stored": stored - dropped, "rejected": [r.to_dict() for r in rejected]}
        if failing:
            # Still queued (the next write may succeed and clear the error), but never said to be stored.
            return 503, {**answer, "stored": 0, "error": f"outcomes not stored: the outcome log {self.log.path.name} "
                                                         f"cannot be written ({failing}); send them again",
                         "field": None}
        if dropped:
            return 503, {**answer, "error": f"{dropped} outcome(s) not stored: the log's queue is full; "
                                            "send them again", "field": None}
        if rejected:
            first = rejected[0]
            return 422, {**answer, "error": f"{first.field} {first.error}", "field": first.field}
        return 200, answer

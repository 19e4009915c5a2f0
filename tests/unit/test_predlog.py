"""The served-inputs window read from the prediction log (serve/predlog.py), across workers' files."""

from __future__ import annotations

import json


def test_served_window_keeps_the_newest_rows_across_workers(tmp_path):
    from datetime import UTC, datetime

    from nbprod.serve.predlog import served_inputs

    def line(second: int, value: int, **extra) -> str:
        return json.dumps({"time": f"2026-01-01T00:00:{second:02d}.000+00:00", "variant": "prod",
                           "inputs": {"x": [value, value]}, **extra}) + "\n"

    # two workers' files interleave in time; a shadow scoring and a challenger's answer are left out
    (tmp_path / "predictions-1.jsonl").write_text(line(1, 1) + line(3, 3) + line(5, 5, shadow=True))
    (tmp_path / "predictions-2.jsonl").write_text(line(2, 2) + line(4, 4) + line(6, 6, variant="challenger"))
    assert served_inputs(tmp_path)["x"].tolist() == [1, 1, 3, 3, 2, 2, 4, 4]
    assert served_inputs(tmp_path, last_rows=3)["x"].tolist() == [3, 4, 4]
    since = datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)
    assert served_inputs(tmp_path, since=since)["x"].tolist() == [3, 3, 4, 4]

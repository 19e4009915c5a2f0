"""nbprod.record's payload (Scrapbook's schema), what cannot be recorded and why, recording outside
IPython, and which recorded values are metrics. In a kernel: tests/func/test_record.py."""

from __future__ import annotations

import math

import pytest

from nbprod.executed.scraps import numeric_metrics
from nbprod.record import data_output, encode, record


def test_payload_matches_scrapbook_schema():
    from scrapbook.scraps import payload_to_scrap

    for value in (1, 2.5, "text", [1, "a"], {"a": {"b": 1}}, False):
        data, metadata = data_output("x", value)
        (mime, payload), = data.items()
        assert mime == f"application/scrapbook.scrap.{payload['encoder']}+json"
        assert metadata == {"scrapbook": {"name": "x", "data": True, "display": False}}
        assert payload_to_scrap(payload).data == value


def test_unrecordable_values_say_why():
    with pytest.raises(ValueError, match="NaN"):
        encode("loss", math.nan)
    with pytest.raises(TypeError, match="None"):
        encode("nothing", None)
    with pytest.raises(TypeError, match="cannot record a object"):
        encode("thing", object())
    with pytest.raises(ValueError, match="non-empty string"):
        record("", 1)


def test_record_outside_ipython_writes_nothing(capsys):
    record("plain_script", 3)
    assert capsys.readouterr().out == ""


def test_numeric_metrics_leave_out_non_numbers():
    scraps = {"a": 1, "b": 0.5, "flag": True, "name": "x", "nan": math.nan, "inf": math.inf, "d": {"x": 1}}
    assert numeric_metrics(scraps) == {"a": 1, "b": 0.5}

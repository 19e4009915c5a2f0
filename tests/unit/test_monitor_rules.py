"""The shared condition syntax (nbprod/core/conditions.py): gates and monitor rules parse with one parser;
record-history forms and duration rules; monitor settings errors are one line naming pyproject.toml."""

from __future__ import annotations

import statistics

import pytest

from nbprod.core.errors import NbprodError
from nbprod.lifecycle.gates import check_gates, parse_gates
from nbprod.monitor.settings import load_settings
from nbprod.core.conditions import check, parse_rules


def test_every_form_parses_and_prints_back():
    rules = parse_rules({"accuracy": [">= 0.95", ">= median(last 10) - 0.03", ">= champion - 0.02"],
                         "duration.train": "<= 2 * median(last 10)", "drift.share": "<= 0.3",
                         "metrics/evaluate.json:f1": "> 1.5*champion+0.1", "x": "== -1e-3"}, "monitor")
    assert [r.text for r in rules] == [
        "accuracy >= 0.95", "accuracy >= median(last 10) - 0.03", "accuracy >= champion - 0.02",
        "duration.train <= 2 * median(last 10)", "drift.share <= 0.3",
        "metrics/evaluate.json:f1 > 1.5 * champion + 0.1", "x == -0.001"]
    assert [r.base for r in rules] == ["number", "median", "champion", "median", "number", "champion", "number"]
    assert rules[3].window == 10 and rules[3].factor == 2


def test_thresholds_from_history_and_champion():
    rule, = parse_rules({"duration.train": "<= 2 * median(last 3)"}, "monitor")
    history = [10.0, 1.0, 2.0, 3.0]                      # only the last 3 count: median 2
    assert check(rule, 4.0, history=history).passed is True
    done = check(rule, 4.5, history=history)
    assert (done.passed, done.threshold) == (False, 4.0)
    first = check(rule, 4.5, history=[])
    assert first.passed is None and "no earlier records" in first.note
    short = check(rule, 1.0, history=[1.0])
    assert short.passed is True and "fewer than 3" in short.note

    rule, = parse_rules({"accuracy": ">= median(last 10) - 0.03"}, "monitor")
    values = [0.97, 0.96, 0.98, 0.95]
    assert check(rule, 0.93, history=values).threshold == pytest.approx(statistics.median(values) - 0.03)
    assert check(rule, 0.93, history=values).passed is False

    rule, = parse_rules({"roc_auc": ">= champion - 0.02"}, "monitor")
    assert check(rule, 0.97, champion=0.995).passed is False
    assert check(rule, 0.98, champion=0.995).passed is True
    assert check(rule, 0.98, has_champion=False).passed is None


def test_gates_refuse_history_forms_but_keep_their_behaviour():
    with pytest.raises(NbprodError, match=r"median\(last N\) needs a history") as error:
        parse_gates({"accuracy": ">= median(last 10)"})
    assert "pyproject.toml" in str(error.value) and "[tool.nbprod.monitor]" in str(error.value)
    gates = parse_gates({"accuracy": ">= 2 * champion"})
    results = check_gates(gates, {"m.json": {"accuracy": 0.9}}, {"m.json": {"accuracy": 0.5}})
    assert results[0].passed is False and results[0].threshold == 1.0 and results[0].gate == "accuracy >= 2 * champion"


@pytest.mark.parametrize("bad", ["at least 0.9", ">= median(last ten)", ">= median(10)", "<= 2 * duration",
                                 ">= champion * 2", "0.9", ">= median(last 0)"])
def test_malformed_monitor_rules_are_one_line_naming_the_key(tmp_path, bad):
    (tmp_path / "pyproject.toml").write_text(f'[tool.nbprod.monitor]\naccuracy = "{bad}"\n')
    with pytest.raises(NbprodError) as error:
        load_settings(tmp_path)
    text = str(error.value)
    assert text.startswith("pyproject.toml: [tool.nbprod.monitor] accuracy") and "Fix:" in text and "\n" not in text


@pytest.mark.parametrize("table, words", [
    ('[tool.nbprod.notify]\nsmtp = "localhost"\n', "is not host:port"),
    ('[tool.nbprod.notify]\non = "sometimes"\n', 'neither "always" nor "alert"'),
    ('[tool.nbprod.notify]\nto = "nobody"\n', "list of email addresses"),
    ('[tool.nbprod.notify]\nssl = true\nstarttls = true\n', "both set"),
    ('[tool.nbprod.notify]\npassword = "x"\n', "unknown key 'password'"),
    ('[tool.nbprod.records]\nkeep_last = -1\n', "keep_last = -1"),
])
def test_malformed_notify_and_retention_settings(tmp_path, table, words):
    (tmp_path / "pyproject.toml").write_text(table)
    with pytest.raises(NbprodError, match=words):
        load_settings(tmp_path)


def test_settings_defaults_and_values(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nbprod.notify]\nsmtp = "mail.example.com:587"\nstarttls = true\nfrom = "a@example.com"\n'
        'to = ["b@example.com"]\non = "always"\n[tool.nbprod.records]\nkeep_last = 5\nkeep_days = 30\n')
    settings = load_settings(tmp_path)
    assert (settings.notify.host, settings.notify.port, settings.notify.security) == ("mail.example.com", 587,
                                                                                       "starttls")
    assert settings.retention.keep_last == 5 and settings.retention.keep_days == 30.0 and settings.rules == []

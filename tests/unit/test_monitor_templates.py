"""templates/retrain: the crontab and CI workflow run `nbprod run --record && nbprod monitor --notify`,
every nbprod command they use parses with today's CLI, and the wheel ships the folder."""

from __future__ import annotations

import re
import shlex
import tomllib

import yaml

from helpers.paths import REPO
from nbprod.cli import build_parser

TEMPLATES = REPO / "templates" / "retrain"


def nbprod_commands(text: str) -> list[list[str]]:
    """The nbprod command lines run by a template (comments and the printed approve hint left out)."""
    text = re.sub(r"\$\{\{.*?\}\}", "X", text)  # GitHub expressions stand for one word
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    found = []
    for match in re.finditer(r"(?:^|[\s;&|(])(?:/srv/venv/bin/)?nbprod ([^;&|\n>]+)", text):
        if "{" not in match.group(1):
            found.append(shlex.split(match.group(1)))
    return found


def test_templates_run_the_recorded_and_monitored_pipeline_with_valid_commands():
    crontab = (TEMPLATES / "crontab").read_text()
    workflow = (TEMPLATES / "retrain.yml").read_text()
    assert "nbprod run --record && /srv/venv/bin/nbprod monitor --notify" in crontab
    steps = yaml.safe_load(workflow)["jobs"]["monitor"]["steps"]
    assert any(step.get("run") == "nbprod run --record && nbprod monitor --notify" for step in steps)
    env = next(step["env"] for step in steps if "env" in step)
    assert set(env) == {"NBPROD_SMTP_USER", "NBPROD_SMTP_PASSWORD"}  # credentials only from the environment
    parser = build_parser()
    commands = nbprod_commands(crontab) + nbprod_commands(workflow)
    assert {c[0] for c in commands} >= {"run", "monitor", "records", "gc", "retrain"}
    for words in commands:
        parser.parse_args(words)  # argparse exits (SystemExit) on an unknown command or option


def test_the_wheel_ships_the_retrain_templates():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["templates/retrain"] == "nbprod/_templates/retrain"

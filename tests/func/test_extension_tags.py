"""The extension's TypeScript tag logic, run with node, must agree with nbprod.notebooks.tags on every case."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from helpers.paths import REPO
from nbprod.notebooks.pipeline import slug
from nbprod.notebooks.tags import SCHEMA_PATH, TagError, parse_cell_tags

EXTENSION = REPO / "extension"

NAMES = ["train", "a", "x1", "load-data", "load_data", "a" * 64, "a" * 65, "Train", "1st", "-x", "", "tr ain",
         "é", "tRAIN"]
PATHS = ["data/train.parquet", "model.pkl", "../data/x.csv", "a/./b", "./a", "a//b", "a/", "/etc/passwd",
         "C:/x", "~/x", "a b", "data/*.csv", ".hidden", "a/.", "-dash", "metrics.json"]
FOREIGN = ["hide-input", "remove-output", "jupyter:foo", "papermill-error-cell-tag", "injected-parameters"]
NEAR = ["Parameters", "SKIP", " shared", "stage", "stage :x", "deps", "Stage:x", "outs :a", "after", "params"]


def _corpus() -> list[list]:
    cases: list[list] = [[]]
    cases += [[f"stage:{n}"] for n in NAMES] + [[f"after:{n}"] for n in NAMES]
    cases += [[f"{kind}:{p}"] for kind in ("deps", "outs", "metrics", "plots") for p in PATHS]
    cases += [[t] for t in ["parameters", "shared", "skip", *FOREIGN, *NEAR]]
    cases += [
        ["stage:a", "stage:b"], ["parameters", "skip"], ["shared", "stage:x"], ["stage:x", "after:y", "after:z"],
        ["stage:x", "deps:a.csv", "outs:b.csv", "metrics:m.json", "plots:p.png", "hide-input"],
        ["skip", "deps:a.csv"], ["deps:a.csv", "deps:a.csv"], [3], ["stage:x", None],
        ["stage:abc\n"], ["deps:x.csv\n"], ["after:b\n"], ["parameters\n"],
    ]
    # Random tags built from schema words and awkward characters, the same every run.
    rng = random.Random(5)
    words = ["stage", "after", "deps", "outs", "metrics", "plots", "parameters", "shared", "skip", "x"]
    alphabet = "ab-_./:~ \tZ09é\n"
    for _ in range(400):
        word = rng.choice(words)
        tail = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        cases.append([rng.choice([word, word + ":", word.upper() + ":", ""]) + tail])
    return cases


def _verdict(tags: list) -> dict:
    try:
        parsed = asdict(parse_cell_tags(tags))
    except TagError as exc:
        return {"tags": tags, "ok": False, "message": exc.message}
    return {"tags": tags, "ok": True, "parsed": parsed}


def _node_modules_ready() -> None:
    if not (EXTENSION / "node_modules" / "typescript").is_dir():
        jlpm = shutil.which("jlpm") or str(Path(sys.executable).parent / "jlpm")
        subprocess.run([jlpm, "install"], cwd=EXTENSION, check=True, timeout=600)


def test_typescript_tag_logic_agrees_with_python(tmp_path):
    if shutil.which("node") is None:
        pytest.fail("node is required to test the JupyterLab extension (install nodejs 20)")
    _node_modules_ready()
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([_verdict(t) for t in _corpus()]), encoding="utf-8")
    slugs = tmp_path / "slugs.json"
    stems = ["train", "01_Load Data", "__Train_v2__", "Model-Eval", "9", "ÄÖ prep", "a" * 70]
    slugs.write_text(json.dumps([[s, slug(s)] for s in stems]), encoding="utf-8")
    tsc = EXTENSION / "node_modules" / "typescript" / "bin" / "tsc"
    subprocess.run(["node", str(tsc), "-p", "tsconfig.test.json"], cwd=EXTENSION, check=True, timeout=300)
    env = {"PATH": "/usr/bin:/bin", "NBPROD_TAG_CASES": str(cases), "NBPROD_SLUG_CASES": str(slugs),
           "NBPROD_SCHEMA": str(SCHEMA_PATH)}
    result = subprocess.run(["node", "--test", "build-test/test/"], cwd=EXTENSION, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# skipped 0" in result.stdout

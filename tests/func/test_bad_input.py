"""Bad input corpus (tests/data/bad): every case gets its one exact line, exit 2, and changes nothing."""

from __future__ import annotations

import shutil

import pytest

from helpers.commands import nbprod
from helpers.paths import DATA
from helpers.projects import tree_digest

CORPUS = DATA / "bad"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.txt").is_file())


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_bad_input_case(project, case):
    shutil.copytree(CORPUS / case / "files", project, dirs_exist_ok=True)
    expected = (CORPUS / case / "expected.txt").read_text(encoding="utf-8").rstrip("\n")
    assert "\n" not in expected and expected.startswith("nbprod: error: ") and ". Fix: " in expected
    before = tree_digest(project)
    for command in (("compile",), ("run", "--no-report")):
        done = nbprod(*command, cwd=project, check=False, timeout=120)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert done.stderr == expected + "\n", command
        assert "Traceback" not in done.stdout + done.stderr
        assert tree_digest(project) == before, command
    # A hostile value never acts: the YAML tag case must not have run os.system.
    assert not (project / "pwned").exists()

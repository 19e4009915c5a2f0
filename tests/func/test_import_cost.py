"""What importing nbprod costs, each in a fresh interpreter: `import nbprod`, the kernel-side modules that
generated stage notebooks import (nbprod.record, nbprod.artifacts) load only the standard library, and
the notebook helpers (nbprod.validate, nbprod.fairness, nbprod.panel...) load their libraries only when
called."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers.paths import REPO

KERNEL_SIDE = ["nbprod.record", "nbprod.artifacts"]


def test_import_nbprod_and_record_stay_stdlib_only():
    code = ("import sys, nbprod, nbprod.record; "
            "heavy = [m for m in ('pandas', 'pandera', 'scipy', 'numpy', 'yaml') if m in sys.modules]; "
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    code = "import nbprod; print(nbprod.validate.__module__, nbprod.drift.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["nbprod.contracts.validation", "nbprod.contracts.drift"]


def test_import_nbprod_does_not_import_fairlearn():
    code = ("import sys, nbprod; assert 'fairlearn' not in sys.modules; f = nbprod.fairness; "
            "import nbprod.fairness.compare, nbprod.lifecycle.candidate_report; "
            "assert callable(f) and 'fairlearn' not in sys.modules and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_kernel_side_modules_and_import_nbprod_load_only_the_standard_library():
    """Generated stage notebooks import nbprod.record and nbprod.artifacts in the user's kernel."""
    code = ("import json, sys\nbefore = set(sys.modules)\nimport nbprod, nbprod.record, nbprod.artifacts\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    foreign = [m for m in loaded if m.split(".")[0] not in (*sys.stdlib_module_names, "nbprod")]
    assert foreign == [], f"not standard library: {foreign}"
    ours = {m for m in loaded if m.startswith("nbprod")}
    assert ours <= {"nbprod", *KERNEL_SIDE}, ours


def test_import_nbprod_does_not_import_ipywidgets():
    code = ("import sys, nbprod; assert 'ipywidgets' not in sys.modules; "
            "nbprod.panel; nbprod.params_form; assert 'ipywidgets' not in sys.modules, 'loaded on lookup'; "
            "print('light')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "light"


def test_import_is_light_in_a_fresh_interpreter():
    # What it costs in time is measured by the benchmarks; here: which heavy modules it pulls in (none).
    code = ("import sys; import nbprod.record; "
            "print([m for m in ('pandas', 'scrapbook', 'papermill', 'nbformat', 'matplotlib', 'IPython') "
            "if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.strip() == "[]"

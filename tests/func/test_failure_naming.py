"""Every failure names its cell and message (issue 13), also when the kernel reports the error
without an ``error`` output: IPython's UsageError for an unknown line or cell magic, alone and after
other cells, and an error a magic only prints to stderr. The CLI's message and the report's banner
name the source notebook and cell, what the kernel printed, and the kept partial notebook.
Real kernels, DVC and nbconvert."""

from __future__ import annotations

import json
import re

import pytest

from helpers.commands import nbprod, run
from helpers.notebooks import code_notebook

pytestmark = pytest.mark.slow

CELLS = [
    (["stage:line_alone"], "%nosuchline foo"),                       # cell 1
    (["stage:cell_alone"], "%%nosuchcell\nbody"),                    # cell 2
    (["stage:line_after"], "x = 1"), ([], "print(x)"), ([], "%nosuchline2 --flag"),   # cells 3-5
    (["stage:cell_after"], "y = 2"), ([], "print(y)"), ([], "%%nosuchcell2\nwhatever"),  # cells 6-8
    (["stage:printed"], "z = 3"), ([], "%timeit -z 1"),            # cells 9-10: the magic prints a UsageError
]
EXPECTED = {
    "line_alone": (1, "UsageError: Line magic function `%nosuchline` not found."),
    "cell_alone": (2, "UsageError: Cell magic `%%nosuchcell` not found."),
    "line_after": (5, "UsageError: Line magic function `%nosuchline2` not found."),
    "cell_after": (8, "UsageError: Cell magic `%%nosuchcell2` not found."),
}


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("failures") / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "fails"\nversion = "0"\n\n[tool.nbprod]\n'
                                         'notebooks = ["notebooks"]\nkernel = "python3"\n', encoding="utf-8")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "flow.ipynb").write_text(json.dumps(code_notebook(CELLS), indent=1), encoding="utf-8")
    run("git", "init", "-q", cwd=root)
    run("dvc", "init", "-q", cwd=root)
    done = nbprod("run", "--keep-going", cwd=root, check=False)  # every stage fails on its own
    return root, done


@pytest.mark.parametrize("stage", sorted(EXPECTED))
def test_unknown_magic_names_notebook_cell_message_and_partial_notebook(failed_run, stage):
    root, done = failed_run
    assert done.returncode == 1
    cell, message = EXPECTED[stage]
    line = f"nbprod: stage '{stage}' failed in notebooks/flow.ipynb cell {cell}: {message} " \
           f"Partially executed notebook: reports/{stage}.ipynb"
    assert line in done.stderr.splitlines(), done.stderr
    assert "CellExecutionError" not in done.stderr and "generated cell" not in done.stderr
    assert "Traceback" not in done.stderr
    assert (root / "reports" / f"{stage}.ipynb").is_file()
    html = (root / "reports" / f"{stage}.html").read_text(encoding="utf-8")
    banner = re.search(r'<div class="banner" role="alert">(.*?)</div>', html).group(1)
    assert "<code>notebooks/flow.ipynb</code>" in banner and f">cell {cell}</a>" in banner
    assert message.replace("`", "`") in banner.replace("&#x27;", "'")
    assert f'<a href="{stage}.ipynb">' in banner


def test_an_error_printed_to_stderr_is_the_message(failed_run):
    root, done = failed_run
    line = next(l for l in done.stderr.splitlines() if "stage 'printed'" in l)
    assert "notebooks/flow.ipynb cell 10" in line and "reports/printed.ipynb" in line
    assert "CellExecutionError: ." not in line
    executed = json.loads((root / "reports" / "printed.ipynb").read_text(encoding="utf-8"))
    html = (root / "reports" / "printed.html").read_text(encoding="utf-8")
    assert "This run failed" in html and ">cell 10</a>" in html
    # %timeit's option parser prints the error to stderr; the kernel sends no error output.
    assert not [o for o in executed["cells"][-1]["outputs"] if o["output_type"] == "error"]
    assert ": UsageError: option -z not recognized" in line, line
    assert "UsageError: option -z not recognized" in html

"""Hostile names, tag values and parameter values never become code, shell or paths outside the project.

Three places a value could escape: the ``cmd`` of a stage in dvc.yaml (a shell line), the cells nbprod
generates in a stage notebook (the injected-parameters cell, the inputs cell), and the file system
(paths that leave the project). Each test feeds hostile text to the real CLI and checks what a user
would: dvc.yaml as parsed, the executed notebook, the values the kernel received, stray files.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from nbprod.notebooks.compile import compile_project
from nbprod.core.errors import NbprodError
from nbprod.core.project import load_project

from helpers.commands import nbprod
from helpers.notebooks import load_nb, save_nb
from helpers.projects import tree_digest


def _yaml(path: Path):
    """Read YAML as DVC does (ruamel, YAML 1.2)."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))

HOSTILE = [
    "x;touch pwned", "$(touch pwned)", "`touch pwned`", "a\nb", "a\rb", "../up", "/abs", "a b", "'q'", '"q"',
    "a|b", "a&&b", "a>b", "~", "*a", "&a", "!!python/object", "{a: 1}", "[1]", "#c", "a: b",
    "é", "a\u2028b", "-rf", "a\x00b", "a\tb", "Train", "a" * 65,
]

# Values a parameters cell may hold; each must reach the kernel as exactly this value.
PARAMS = {
    "quote": "it's \"quoted\"",
    "semicolon": "a; touch pwned_semicolon",
    "subshell": "$(touch pwned_subshell)",
    "backtick": "`touch pwned_backtick`",
    "newline": "line1\nimport os; os.system('touch pwned_newline')\n",
    "triple": '"""; import os; os.system("touch pwned_triple"); """',
    "traversal": "../../etc/passwd",
    "absolute": "/etc/passwd",
    "yaml_null": "null",
    "yaml_bool": "yes",
    "yaml_tilde": "~",
    "yaml_tag": "!!python/object/apply:os.system ['touch pwned_yaml']",
    "yaml_anchor": "&a [*a]",
    "yaml_doc": "---\n...\n",
    "template": "{{ x }} ${HOME} %s {0}",
    "backslash": "C:\\new\\table\\x00",
    "unicode": "日本語 — \u2028 \u0085 sep",
    "number_text": "1e3",
    "nested": {"k; rm": ["$(x)", "\n", None, True, 1.5], "null": None, "yes": "no"},
}


def _nb(cells):
    return {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags} if tags else {},
                       "outputs": [], "source": source} for source, tags in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _only_examples_removed(project: Path) -> None:
    for path in (project / "notebooks").glob("*.ipynb"):
        path.unlink()


def _no_pwned(*roots: Path) -> None:
    for root in roots:
        assert not [p for p in root.rglob("pwned*")], f"a hostile value ran a command under {root}"


def _refused(project: Path, tags: list[str]) -> str:
    """Compile a notebook with these tags through the Python API; return the one-line refusal."""
    save_nb(project / "notebooks/evil.ipynb", _nb([("a = 1", tags)]))
    try:
        compile_project(load_project(project))
    except NbprodError as error:
        return str(error)
    finally:
        (project / "notebooks/evil.ipynb").unlink()
    raise AssertionError(f"compile accepted {tags!r}")


def test_hostile_stage_names_are_refused_before_anything_is_written(project):
    before = tree_digest(project)
    for name in HOSTILE:
        for tags in ([f"stage:{name}"], ["stage:one", f"after:{name}"]):
            message = _refused(project, tags)
            assert "has an invalid stage name" in message and "\n" not in message, (tags, message)
    assert tree_digest(project) == before
    # And through the CLI, as a user meets it: one line, exit 2, nothing written.
    save_nb(project / "notebooks/evil.ipynb", _nb([("a = 1", ["stage:x;touch pwned"])]))
    before = tree_digest(project)
    done = nbprod("compile", cwd=project, check=False)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "invalid stage name" in done.stderr
    assert tree_digest(project) == before
    _no_pwned(project)


def test_hostile_paths_in_tags_are_refused(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "notebooks/link").symlink_to(outside)
    before = tree_digest(project)
    hostile = ["$(touch pwned).csv", "a;touch pwned", "`id`.csv", "x\n.csv", "../../outside/x.csv", "/tmp/x.csv",
               "~/x.csv", "../.git/hooks/pre-commit", "../.dvc/config", "../.nbprod/stages/prepare.ipynb",
               "link/x.csv", "a b.csv", "x\x00.csv", "C:/x.csv", "-rf"]
    for kind in ("deps", "outs", "metrics", "plots"):
        for path in hostile:
            message = _refused(project, ["stage:one", f"{kind}:{path}"])
            assert "\n" not in message and "Fix:" in message, (kind, path, message)
    assert tree_digest(project) == before
    save_nb(project / "notebooks/evil.ipynb", _nb([("a = 1", ["stage:one", "outs:link/x.csv"])]))
    done = nbprod("compile", cwd=project, check=False)
    assert done.returncode == 2 and "leads outside the project through a symlink" in done.stderr
    assert list(outside.iterdir()) == []
    _no_pwned(project)


def test_yaml_special_names_and_paths_stay_strings_and_cmds_stay_fixed(project):
    names = ["yes", "no", "on", "off", "null", "true", "y", "n"]
    save_nb(project / "notebooks/names.ipynb", _nb([("a = 1", [f"stage:{n}"]) for n in names]))
    specials = ["null", "true", "yes", "on", "1e3", "0x10", "0o17", ".nan", ".inf", "1_000", "2024-01-01"]
    save_nb(project / "notebooks/odd.ipynb", _nb([("a = 1", ["stage:odd"] + [f"outs:../{p}" for p in specials])]))
    nbprod("compile", cwd=project)
    stages = _yaml(project / "dvc.yaml")["stages"]
    assert [n for n in stages if n in names] == names
    assert stages["odd"]["outs"][1:] == sorted(specials)  # at the project root: bare YAML specials
    for name, stage in stages.items():
        assert stage["cmd"] == f"nbprod exec {name}"
    # DVC reads the same file the same way.
    done = nbprod("pipeline", cwd=project)
    odd = next(s for s in json.loads(done.stdout)["stages"] if s["name"] == "odd")
    assert sorted(odd["outs"]) == sorted(specials)
    listed = nbprod("status", "--json", cwd=project)  # DVC itself parses dvc.yaml here
    assert {s["name"] for s in json.loads(listed.stdout)} >= set(names) | {"odd"}


def test_hostile_notebook_file_names_stay_out_of_generated_code(project):
    _only_examples_removed(project)
    for name in ["evil'); import os; os.system('touch pwned') #", "$(touch pwned)", "x`touch pwned`;"]:
        path = project / "notebooks" / f"{name}.ipynb"
        save_nb(path, _nb([("v = 1", ["stage:make"]), ("w = v + 1", ["stage:use"])]))
        nbprod("compile", cwd=project)
        stage_nb = load_nb(project / ".nbprod/stages/use.ipynb")
        for cell in stage_nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            tree = ast.parse("".join(cell["source"]))
            calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
            assert all(c in ("_nbprod_load", "_nbprod_save") for c in calls), calls
        stages = _yaml(project / "dvc.yaml")["stages"]
        assert {s["cmd"] for s in stages.values()} == {"nbprod exec make", "nbprod exec use"}
        path.unlink()
    # A line break in a file name would start a line of code in a generated comment: refused.
    path = project / "notebooks" / "evil\nimport os; os.system('touch pwned')\n#.ipynb"
    save_nb(path, _nb([("v = 1", ["stage:make"]), ("w = v + 1", ["stage:use"])]))
    before = tree_digest(project)
    done = nbprod("compile", cwd=project, check=False)
    assert done.returncode == 2 and "holds a control character" in done.stderr
    assert len(done.stderr.splitlines()) == 1 and tree_digest(project) == before
    _no_pwned(project)


def test_exec_refuses_hostile_stage_names(project):
    for name in ["../../etc/passwd", "x;touch pwned", "$(touch pwned)", "one\n"]:
        done = nbprod("exec", name, cwd=project, check=False)
        assert done.returncode == 2 and "is not a stage name" in done.stderr, (name, done.stderr)
    _no_pwned(project)


@pytest.mark.slow  # runs the pipeline with every hostile value (~40 s)
def test_hostile_parameter_values_reach_the_kernel_exactly(project):
    _only_examples_removed(project)
    params_source = "\n".join(f"{key} = {value!r}" for key, value in PARAMS.items())
    record = ("import json\n"
              "received = {" + ", ".join(f"{k!r}: {k}" for k in PARAMS) + "}\n"
              "with open('received.json', 'w', encoding='utf-8') as f:\n"
              "    json.dump(received, f, ensure_ascii=False)\n")
    save_nb(project / "notebooks/params.ipynb", _nb([(params_source, ["parameters"]),
                                                     (record, ["stage:echo", "outs:received.json"])]))
    nbprod("run", "--no-report", cwd=project, timeout=300)
    received = json.loads((project / "notebooks/received.json").read_text(encoding="utf-8"))
    assert received == PARAMS
    assert _yaml(project / "params.yaml")["params"] == PARAMS
    _check_injected_cell(project / "reports/echo.ipynb")
    # The same hostile values typed into params.yaml by hand, plus new ones only params.yaml holds.
    edited = {key: (value + " edited" if isinstance(value, str) else value) for key, value in PARAMS.items()}
    edited["quote"] = "x'); import os; os.system('touch pwned_edit') #"
    edited["newline"] = "a\n\"\"\"\nimport os\nos.system('touch pwned_edit2')\n"
    doc = _yaml(project / "params.yaml")
    doc["params"] = edited
    with open(project / "params.yaml", "w", encoding="utf-8") as handle:
        YAML(typ="safe", pure=True).dump(doc, handle)
    nbprod("run", "--no-report", cwd=project, timeout=300)
    received = json.loads((project / "notebooks/received.json").read_text(encoding="utf-8"))
    assert received == edited
    _check_injected_cell(project / "reports/echo.ipynb")
    _no_pwned(project, Path.home())


def _check_injected_cell(executed: Path) -> None:
    nb = load_nb(executed)
    cell = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    for statement in tree.body:  # only NAME = literal: nothing that could run
        assert isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name)
        ast.literal_eval(statement.value)
    assert not any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))


def test_non_literal_yaml_values_in_params_are_refused_in_one_line(project):
    _only_examples_removed(project)
    save_nb(project / "notebooks/params.ipynb", _nb([("when = 'x'", ["parameters"]),
                                                     ("print(when)", ["stage:show"])]))
    nbprod("compile", cwd=project)
    (project / "params.yaml").write_text("params:\n  when: 2024-01-01\n", encoding="utf-8")
    done = nbprod("exec", "show", cwd=project, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("nbprod: error: params.yaml: params.when is a date, which a notebook parameter "
                                   "cannot hold. Fix: quote it, or use a number, string, boolean, null, list or "
                                   "mapping")
    assert "Traceback" not in done.stderr

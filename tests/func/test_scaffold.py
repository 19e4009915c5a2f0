"""`nbprod init`: an unknown --template is one line; the default still makes the example project."""

from __future__ import annotations


def test_unknown_template_is_one_line(tmp_path):
    from helpers.commands import nbprod

    done = nbprod("init", "--template", "nope", "x", cwd=tmp_path, check=False)
    assert done.returncode == 2 and done.stderr.strip() == (
        "nbprod: error: --template: no project template 'nope'. Fix: choose one of: example, fairness, mixed, sql")
    assert not (tmp_path / "x").exists()


def test_default_init_still_makes_the_example_project(template_project):
    from nbprod.commands.scaffold import template_names

    assert template_names()[0] == "example"
    assert sorted(p.name for p in (template_project / "notebooks").glob("*.ipynb")) == ["model.ipynb",
                                                                                      "prepare.ipynb"]
    assert not (template_project / "notebooks/applicants.py").exists()
    assert "[tool.nbprod.gates]" not in (template_project / "pyproject.toml").read_text(encoding="utf-8")

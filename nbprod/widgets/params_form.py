"""``nbprod.params_form()``: this notebook's parameters as typed widgets, saved to params.yaml or run as
a DVC experiment. Outside a kernel it prints the parameters."""

from __future__ import annotations

import os
from pathlib import Path

from .panel import in_kernel


def params_form(notebook: str | Path | None = None, poll: float = 0.5):
    """Show the parameters of ``notebook`` (default: the notebook this kernel belongs to).

    Numbers are number fields (sliders when the parameters cell declares ``# range: LOW..HIGH``),
    booleans checkboxes, strings text, lists and mappings text as a literal or YAML. "Save to
    params.yaml" checks every value as compile would and writes atomically; "Run as experiment" runs
    ``dvc exp run -S`` with the changed values and shows the metrics beside the current ones.
    """
    from nbprod.core.project import find_project

    from .params import notebook_params

    path = _this_notebook(notebook)
    project = find_project(path)
    form = notebook_params(project, path)
    if not in_kernel():
        print(params_text(form))
        return None
    from .form_view import ParamsForm

    return ParamsForm(form, poll=poll)


def params_text(form) -> str:
    lines = [f"{form.notebook} (params.yaml section {form.section})"]
    for p in form.params:
        bounds = f"  range {p.low:g}..{p.high:g}" if p.low is not None else ""
        lines.append(f"  {p.name} = {p.value!r}  (notebook: {p.default!r}){bounds}")
    return "\n".join(lines)


def _this_notebook(notebook: str | Path | None) -> Path:
    """The notebook path: given, or told by the front end (Jupyter's JPY_SESSION_NAME, VS Code's
    ``__vsc_ipynb_file__``), or the only notebook in the current folder."""
    from nbprod.core.errors import NbprodError

    if notebook is not None:
        return Path(notebook).resolve()
    if os.environ.get("JPY_SESSION_NAME", "").endswith(".ipynb"):
        return Path(os.environ["JPY_SESSION_NAME"]).resolve()
    if in_kernel():
        from IPython import get_ipython

        vscode = get_ipython().user_ns.get("__vsc_ipynb_file__")
        if vscode:
            return Path(vscode).resolve()
    found = sorted(Path.cwd().glob("*.ipynb"))
    if len(found) == 1:
        return found[0].resolve()
    raise NbprodError("cannot tell which notebook this kernel runs", Path.cwd(),
                      fix="name it: nbprod.params_form('model.ipynb')")

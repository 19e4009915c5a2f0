"""nbprod.panel() and nbprod.params_form() driven in a real kernel: buttons found by description and
clicked with Button.click(), effects checked on disk, against real `nbprod run` and DVC processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.commands import nbprod
from helpers.notebooks import code_notebook, save_nb
from helpers.paths import BIN
from helpers.waiting import wait_for

from nbprod.execution.lifeline import pid_alive

pytestmark = pytest.mark.slow

SLOW_STAGE = "import time\nfor _ in range(1500):\n    time.sleep(0.2)\n"


class Kernel:
    """A real IPython kernel (jupyter_client) whose cwd is a notebook folder."""

    def __init__(self, cwd: Path):
        from jupyter_client.manager import start_new_kernel

        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def run(self, code: str, timeout: float = 120) -> str:
        out: list[str] = []

        def hook(msg):
            kind = msg["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))

        self.client.execute_interactive(code, output_hook=hook, timeout=timeout)
        return "".join(out)

    def value(self, expression: str):
        return json.loads(self.run(f"import json as _j; print(_j.dumps({expression}))").strip().splitlines()[-1])

    def wait_for(self, expression: str, timeout: float = 240, every: float = 1.0):
        """The value of ``expression`` in the kernel once it is true."""
        try:
            return wait_for(lambda: self.value(expression), timeout, expression, every=every)
        except AssertionError as error:
            raise AssertionError(f"{error}; panel says: "
                                 + self.run("print(p.message.value, p.progress_line.value, p.states())")) from None

    def restart(self) -> None:
        self.manager.restart_kernel(now=True)
        self.client.wait_for_ready(timeout=60)

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel_in(request):
    kernels: list[Kernel] = []

    def start(cwd: Path) -> Kernel:
        kernels.append(Kernel(cwd))
        return kernels[-1]

    yield start
    for kernel in kernels:
        kernel.stop()


def cli_status(root: Path) -> dict[str, str]:
    return {s["name"]: s["state"] for s in json.loads(nbprod("status", "--json", cwd=root).stdout)}


def test_run_all_from_the_panel_brings_every_stage_up_to_date(project, kernel_in):
    kernel = kernel_in(project / "notebooks")
    assert kernel.value("__import__('nbprod') and 'ipywidgets' in __import__('sys').modules") is False
    kernel.run("import nbprod; p = nbprod.panel(poll=0.3)")
    states = kernel.value("p.states()")
    assert set(states.values()) == {"never run"} and {"prepare", "train", "evaluate"} <= set(states)

    kernel.run("p.button('Run all').click()")
    assert kernel.value("p.button('Run all').disabled") is True
    # Live progress: the panel shows a stage running with its cell count, as the CLI does.
    progress = kernel.wait_for("p.progress_line.value if 'cell' in p.progress_line.value else ''", every=0.3)
    assert progress.startswith("stage ") and "/" in progress
    kernel.wait_for("set(p.states().values()) == {'up to date'}")
    assert set(cli_status(project).values()) == {"up to date"}

    assert kernel.value("p.message.value").endswith("run finished</span>")
    row = kernel.value("[c.value for c in next(r for r in p.table.children if r.stage == 'evaluate').children[:4]]")
    assert "accuracy=" in row[2]
    assert 'href="' in row[3] and "evaluate.ipynb" in row[3] and "evaluate.html" in row[3]
    assert "up to date" in kernel.value("p._repr_mimebundle_()['text/plain']")
    # The run was an ordinary `nbprod run`: its own folder, events and pid, in its own session.
    folder = next(p for p in (project / ".nbprod" / "runs").iterdir() if (p / "pid").is_file())
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "run_start" and events[-1] == {**events[-1], "event": "run_end", "ok": True}

    # Refresh asks status again: a params.yaml edit made outside the panel shows up with its reason.
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("C: 1.0", "C: 0.5"))
    kernel.run("p.button('Refresh').click()")
    kernel.wait_for("p.states().get('train') == 'changed'")
    assert "changed: params" in kernel.value(
        "next(r for r in p.table.children if r.stage == 'train').children[1].value")
    (project / "params.yaml").write_text(params)
    kernel.run("p.button('Refresh').click()")
    kernel.wait_for("set(p.states().values()) == {'up to date'}")

    # Run from here: evaluate and what follows it, nothing before it.
    kernel.run("p.button('Run from here', stage='evaluate').click()")
    kernel.wait_for("p.message.value.endswith('run finished</span>') and p.following is None")
    newest = max((project / ".nbprod" / "runs").glob("*/events.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    start = json.loads(newest.read_text().splitlines()[0])
    assert start["stages"][0] == "evaluate" and "prepare" not in start["stages"]


@pytest.fixture
def slow_project(project) -> Path:
    save_nb(project / "notebooks" / "slow.ipynb", code_notebook([(["stage:slow"], SLOW_STAGE)]))
    nbprod("compile", cwd=project)
    return project


def test_cli_run_shows_up_holds_the_lock_and_cancel_stops_it(slow_project, kernel_in):
    root = slow_project
    cli = subprocess.Popen([str(BIN / "nbprod"), "run", "slow"], cwd=root, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        kernel = kernel_in(root / "notebooks")
        kernel.run("import nbprod; p = nbprod.panel(poll=0.3)")
        # A run started in a terminal shows up, live.
        kernel.wait_for("p.states().get('slow') == 'running'")
        assert "slow" in kernel.value("p.progress_line.value")
        # The lock is honoured: Run all is refused with the run lock's words, nothing is started.
        runs_before = sorted(p.name for p in (root / ".nbprod" / "runs").iterdir())
        kernel.run("p.button('Run all').click()")
        assert "another nbprod run is in progress" in kernel.value("p.message.value")
        assert sorted(p.name for p in (root / ".nbprod" / "runs").iterdir()) == runs_before
        # Cancel stops the long stage (the terminal's Ctrl-C), and the stage is not recorded as done.
        kernel.run("p.button('Cancel').click()")
        cli.wait(timeout=60)
        assert cli.returncode != 0
        kernel.wait_for("p.following is None and p.states().get('slow') not in ('running', None)")
        assert cli_status(root)["slow"] != "up to date"
        # The panel says the stage failed, and why (the interrupt, from the run's events).
        assert kernel.value("p.states()['slow']") == "failed"
        why = kernel.value("next(r for r in p.table.children if r.stage == 'slow').children[1].value")
        assert "stage &#x27;slow&#x27; interrupted" in why
        assert "run failed: the run stopped before its end" in kernel.value("p.message.value")
        # Running the panel's cell again replaces the old panel: it stops following and says so.
        kernel.run("q = nbprod.panel(poll=0.3)")
        assert kernel.value("p._closed.is_set() and not q._closed.is_set()") is True
        assert "a newer panel" in kernel.value("p.message.value")
        assert kernel.value("p.button('Run all').disabled") is True
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()


def test_a_run_survives_a_kernel_restart_and_a_new_panel_follows_it(slow_project, kernel_in):
    root = slow_project
    kernel = kernel_in(root / "notebooks")
    kernel.run("import nbprod; p = nbprod.panel(poll=0.3)")
    kernel.run("p.button('Run this stage', stage='slow').click()")
    kernel.wait_for("p.states().get('slow') == 'running'")
    pid = int(next(p for p in (root / ".nbprod" / "runs").glob("*/pid")).read_text())
    # The panel's run holds the project's run lock: a terminal run is refused while it goes.
    refused = nbprod("run", cwd=root, check=False)
    assert refused.returncode == 2 and "another nbprod run is in progress" in refused.stderr
    kernel.restart()
    time.sleep(1)
    assert pid_alive(pid), "the run died with the kernel"
    assert os.getsid(pid) == pid  # its own session
    kernel.run("import nbprod; p = nbprod.panel(poll=0.3)")
    kernel.wait_for("p.states().get('slow') == 'running'")
    # Interrupting the kernel does not reach the run either.
    kernel.manager.interrupt_kernel()
    time.sleep(1)
    assert pid_alive(pid)
    kernel.run("p.button('Cancel').click()")
    wait_for(lambda: not pid_alive(pid), 60, "the cancelled run's process to end", every=0.5)
    kernel.wait_for("p.following is None and p.states().get('slow') != 'running'")
    assert not (root / ".nbprod" / "run.lock").read_text().strip()  # the lock was released


def test_params_form_saves_and_runs_an_experiment(ran_copy, kernel_in):
    root = ran_copy
    kernel = kernel_in(root / "notebooks")
    kernel.run("import nbprod; f = nbprod.params_form('model.ipynb', poll=0.3)")
    assert kernel.value("f.values()") == {"C": 1.0, "max_iter": 1000, "threshold": 0.5}
    assert kernel.value("type(f.field('max_iter')).__name__") == "IntText"

    before = (root / "params.yaml").read_text()
    kernel.run("f.field('threshold').value = 7.5")  # a float field: no range declared, so compile accepts it
    kernel.run("f.field('max_iter').value = 500; f.button('Save to params.yaml').click()")
    assert "saved max_iter, threshold" in kernel.value("f.message.value")
    assert "max_iter: 500" in (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(before)

    kernel.run("f = nbprod.params_form('model.ipynb', poll=0.3); f.field('C').value = 0.01")
    kernel.run("f.button('Run as experiment').click()")
    assert "dvc exp run -S model.C=0.01" in kernel.value("f.message.value")
    # While the experiment runs, saving is refused (a stage would run with values DVC does not record).
    during = (root / "params.yaml").read_text()
    kernel.run("f.field('max_iter').value = 300; f.button('Save to params.yaml').click()")
    assert "another nbprod run is in progress" in kernel.value("f.message.value")
    assert (root / "params.yaml").read_text() == during
    kernel.run("f.field('max_iter').value = 1000")
    kernel.wait_for("'done' in f.message.value or 'failed' in f.message.value", timeout=300)
    assert "done" in kernel.value("f.message.value"), kernel.value("f.message.value")
    table = kernel.value("f.result.value")
    assert "<th>current</th><th>experiment</th>" in table and "evaluate.accuracy" in table
    exps = subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=root, capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r'"model\.C"\s*:\s*0\.01|"C"\s*:\s*0\.01', exps), "the experiment does not hold C = 0.01"

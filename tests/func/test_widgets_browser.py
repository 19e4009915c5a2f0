"""nbprod.panel() rendered by real front ends without the nbprod JupyterLab extension: Jupyter
Notebook 7, and JupyterLab with the extension disabled. Debian's chromium through Playwright; a
click on "Run all" in the page runs the pipeline, and the rows come up to date."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from helpers.notebooks import code_notebook, save_nb
from helpers.paths import ARTIFACTS as ALL_ARTIFACTS
from helpers.servers import free_port, stop_process, wait_until_answers
from helpers.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("NBPROD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ALL_ARTIFACTS / "widgets_browser"
# At the project root, outside [tool.nbprod] notebooks: this notebook is no stage of the pipeline.
CELLS = [([], "import nbprod\nnbprod.panel()"), ([], "nbprod.params_form('notebooks/model.ipynb')")]


@pytest.fixture(params=["notebook7", "lab-without-extension"])
def front_end(request, tmp_path):
    """A real Jupyter server (Notebook 7, or Lab with the nbprod lab and server extensions off) on a
    fresh `nbprod init` project holding a notebook that shows the panel; always stopped."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or set NBPROD_CHROMIUM)")
    project = tmp_path / "project"
    subprocess.run([sys.executable, "-m", "nbprod", "init", str(project)], check=True, capture_output=True)
    save_nb(project / "panel.ipynb", code_notebook(CELLS))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token, port = secrets.token_hex(16), free_port()
    if request.param == "notebook7":
        app, path = "notebook", "/notebooks/panel.ipynb"
        extra = []
    else:
        app, path = "jupyterlab", "/lab/tree/panel.ipynb"
        # --level=user writes into this test's JUPYTER_CONFIG_DIR; the default (sys_prefix) would
        # disable the extension in the whole venv, for every later test and for the user.
        subprocess.run([sys.executable, "-m", "jupyter", "labextension", "disable", "--level=user", "nbprod"],
                       env=env, check=True, capture_output=True)
        extra = ['--ServerApp.jpserver_extensions={"nbprod.jupyter": False}']
    log_path = tmp_path / "server.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", app, "--no-browser", "--allow-root", f"--port={port}", "--ServerApp.port_retries=0",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={project}", f"--IdentityProvider.token={token}", *extra],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(process, f"{base}/api/status", log_path, headers={"Authorization": f"token {token}"})
        yield {"name": request.param, "url": f"{base}{path}?token={token}", "base": base, "token": token,
               "project": project, "log": log_path}
    finally:
        stop_process(process, grace=20)
        log.close()


def kernel_idle(front_end, timeout: float = 90) -> None:
    def idle() -> bool:
        kernels = requests.get(f"{front_end['base']}/api/kernels", timeout=5,
                               headers={"Authorization": f"token {front_end['token']}"}).json()
        return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)

    wait_for(idle, timeout, "the notebook's kernel to be idle", every=0.5)


def states(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.nbprod-stage')]
        .map(row => [[...row.classList].find(c => c.startsWith('nbprod-stage-')).slice(13),
                     row.querySelector('.nbprod-state')?.dataset.state]))""")


def test_panel_renders_and_run_all_runs_the_pipeline(front_end):
    from playwright.sync_api import sync_playwright

    shots = ARTIFACTS / front_end["name"]
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(front_end["url"])
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            if front_end["name"] == "lab-without-extension":
                # The nbprod lab extension is off: no chips, no sidebar panel.
                page.wait_for_timeout(1500)
                assert page.locator(".jp-nbprod-chip").count() == 0
            # Run both cells once the notebook's kernel is idle.
            kernel_idle(front_end)
            page.wait_for_timeout(1000)
            page.locator(".jp-Cell .jp-InputArea-editor").first.click()
            page.keyboard.press("Shift+Enter")
            page.keyboard.press("Shift+Enter")
            page.wait_for_selector(".nbprod-panel .nbprod-stage", timeout=120_000)
            page.wait_for_selector(".nbprod-params", timeout=60_000)
            assert set(states(page)) >= {"prepare", "train", "evaluate"}
            assert set(states(page).values()) == {"never run"}
            assert page.locator(".nbprod-params input").count() >= 3
            page.screenshot(path=str(shots / "01-panel.png"), full_page=True)

            page.locator(".nbprod-panel button", has_text="Run all").click()
            page.wait_for_function("() => [...document.querySelectorAll('.nbprod-state')]"
                                   ".some(s => s.dataset.state === 'running')", timeout=120_000)
            page.screenshot(path=str(shots / "02-running.png"), full_page=True)
            page.wait_for_function("""() => { const s = [...document.querySelectorAll('.nbprod-state')];
                return s.length > 0 && s.every(x => x.dataset.state === 'up to date'); }""", timeout=300_000)
            page.screenshot(path=str(shots / "03-up-to-date.png"), full_page=True)
            metrics = page.locator(".nbprod-stage-evaluate").inner_text()
            assert "accuracy=" in metrics
            link = page.locator(".nbprod-stage-evaluate a", has_text="report")
            assert link.get_attribute("href").endswith("/files/reports/evaluate.html")
            assert requests.get(front_end["base"] + link.get_attribute("href"),
                                headers={"Authorization": f"token {front_end['token']}"}, timeout=10).ok
        except BaseException:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    status = subprocess.run([sys.executable, "-m", "nbprod", "status", "--json"], cwd=front_end["project"],
                            capture_output=True, text=True, check=True)
    assert {s["state"] for s in json.loads(status.stdout)} == {"up to date"}

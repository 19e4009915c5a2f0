"""End to end in a real browser: tag a cell as a new stage from its chip, run the pipeline from the
side panel, and watch every stage come up to date. Debian's chromium, driven by Playwright."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import REPO, ARTIFACTS as ALL_ARTIFACTS
from helpers.servers import free_port, stop_process, wait_until_answers
from helpers.waiting import wait_for
from nbprod.notebooks.tags import parse_cell_tags

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("NBPROD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ALL_ARTIFACTS / "browser_e2e"
STAGES = ["prepare", "train", "evaluate", "roc"]


def installed_labextension_is_current() -> None:
    """The browser loads the labextension pip installed; a build older than the sources tests old code."""
    import jupyterlab  # noqa: F401 - fails early when JupyterLab is not installed
    from jupyter_core.paths import jupyter_path

    source = REPO / "extension"
    built = [Path(p) / "labextensions" / "nbprod" / "package.json" for p in jupyter_path()]
    built = [p for p in built if p.is_file()]
    if not built:
        pytest.fail("the nbprod labextension is not installed: run pip install -e .")
    newest_source = max(p.stat().st_mtime for p in [*(source / "src").glob("*.ts"), *(source / "style").glob("*")])
    if built[0].stat().st_mtime < newest_source:
        pytest.fail(f"{built[0].parent} is older than extension/src: run pip install -e . to rebuild it")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a fresh copy of the example project, news and update checks off."""
    installed_labextension_is_current()
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or set NBPROD_CHROMIUM)")
    project = tmp_path / "project"
    subprocess.run([sys.executable, "-m", "nbprod", "init", str(project)], check=True, capture_output=True)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = open(tmp_path / "lab.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={project}",
         f"--IdentityProvider.token={token}"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(process, f"{base}/api/status", tmp_path / "lab.log",
                           headers={"Authorization": f"token {token}"})
        yield {"base": base, "token": token, "project": project, "log": tmp_path / "lab.log"}
    finally:
        stop_process(process, grace=20)
        log.close()


def _saved_tags(notebook_file: Path, wanted: str) -> list | None:
    """The tags of the notebook's tenth cell on disk, once they hold ``wanted``."""
    tags = json.loads(notebook_file.read_text())["cells"][9]["metadata"].get("tags", [])
    return tags if wanted in tags else None


def stage_states(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.jp-nbprod-stage')]
        .map(row => [row.dataset.stage, row.querySelector('.jp-nbprod-state').dataset.state]))""")


def test_tag_a_new_stage_and_run_the_pipeline_from_the_panel(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.on("console", lambda message: console.append(message.text))
        try:
            page.goto(f"{lab['base']}/lab/tree/notebooks/model.ipynb?token={lab['token']}")
            chips = page.locator(".jp-nbprod-chip")
            page.wait_for_selector(".jp-nbprod-chip-start[data-stage='evaluate']", timeout=90_000)
            # Every code cell has a chip (Lab attaches cells below the fold progressively); the
            # tagged cells show their stage, roles are marked.
            page.wait_for_function("() => document.querySelectorAll('.jp-nbprod-chip').length >= 7",
                                   timeout=30_000)
            assert chips.count() == 7
            kinds = [chips.nth(i).get_attribute("data-kind") for i in range(7)]
            stages = [chips.nth(i).get_attribute("data-stage") for i in range(7)]
            assert kinds == ["shared", "parameters", "stage", "stage", "stage", "stage", "stage"]
            assert stages[2:] == ["train", "train", "evaluate", "evaluate", "evaluate"]
            page.screenshot(path=str(ARTIFACTS / "01-chips.png"))

            # The ROC cell becomes a new stage, through the chip's dialog.
            roc_chip = chips.nth(6)
            roc_chip.click()
            page.wait_for_selector(".jp-nbprod-editor")
            page.select_option("select[name='nbprod-role']", "new")
            page.fill("input[name='nbprod-new-stage']", "roc")
            page.screenshot(path=str(ARTIFACTS / "02-tag-dialog.png"))
            page.click(".jp-Dialog-button.jp-mod-accept")
            page.wait_for_selector(".jp-nbprod-chip-start[data-stage='roc']")
            assert "stage roc" in roc_chip.inner_text()

            # Save, and check the notebook on disk carries exactly the tags the CLI reads.
            page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
            page.keyboard.press("Control+s")
            notebook_file = lab["project"] / "notebooks" / "model.ipynb"
            tags = wait_for(lambda: _saved_tags(notebook_file, "stage:roc"), 20, "the new tag saved in model.ipynb",
                            every=0.3)
            assert sorted(tags) == ["plots:figures/roc.png", "stage:roc"]
            assert parse_cell_tags(tags).stage == "roc"

            # The side panel shows the four stages, the new one included, none run yet.
            page.click("li[data-id='nbprod-pipeline-panel']")
            page.wait_for_selector(".jp-nbprod-stage[data-stage='roc']", timeout=60_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-nbprod-stage .jp-nbprod-state')]"
                ".every(e => e.dataset.state === 'never run')", timeout=60_000)
            assert list(stage_states(page)) == STAGES
            assert page.locator(".jp-nbprod-dag .jp-nbprod-dag-node").count() == 4
            page.screenshot(path=str(ARTIFACTS / "03-panel-before-run.png"))

            page.click(".jp-nbprod-run-all")
            page.wait_for_selector(".jp-nbprod-progress-text", timeout=60_000)
            page.wait_for_function(
                "() => /Running \\w+: cell \\d+\\/\\d+/.test("
                "document.querySelector('.jp-nbprod-progress-text')?.textContent ?? '')", timeout=90_000)
            page.screenshot(path=str(ARTIFACTS / "04-running.png"))

            page.wait_for_function(
                "() => { const s = [...document.querySelectorAll('.jp-nbprod-stage .jp-nbprod-state')];"
                " return s.length === 4 && s.every(e => e.dataset.state === 'up to date'); }",
                timeout=240_000)
            assert stage_states(page) == {name: "up to date" for name in STAGES}
            assert "succeeded" in page.inner_text(".jp-nbprod-run")
            metrics = page.inner_text(".jp-nbprod-stage[data-stage='evaluate'] .jp-nbprod-metrics")
            assert "accuracy" in metrics
            page.screenshot(path=str(ARTIFACTS / "05-up-to-date.png"))

            # The executed notebook of the new stage opens in Lab.
            page.click(".jp-nbprod-stage[data-stage='roc'] .jp-nbprod-open-notebook")
            page.wait_for_selector(".lm-TabBar-tab[data-type='document-title'] >> text=roc.ipynb",
                                   timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "06-executed-notebook.png"))

            # "Debug" opens the stage on its own, its inputs loaded from the DVC cache.
            page.click(".jp-nbprod-stage[data-stage='evaluate'] .jp-nbprod-debug")
            page.wait_for_selector(".lm-TabBar-tab[data-type='document-title'] >> text=evaluate.ipynb",
                                   timeout=60_000)
            assert (lab["project"] / "nbprod-debug" / "evaluate.ipynb").is_file()
            page.screenshot(path=str(ARTIFACTS / "07-debug-notebook.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            (ARTIFACTS / "console.log").write_text("\n".join(console))
            raise
        finally:
            browser.close()
    assert any("nbprod: pipeline panel activated" in line for line in console)
    status = subprocess.run([sys.executable, "-m", "nbprod", "status", "--json"], cwd=lab["project"],
                            capture_output=True, text=True, check=True)
    assert {s["name"]: s["state"] for s in json.loads(status.stdout)} == {n: "up to date" for n in STAGES}

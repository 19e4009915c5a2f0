"""The Models panel end to end in a real browser (Debian's chromium driven by Playwright) on a trained
project: retrain from the panel, see the candidate with its gates, approve it with a note, check the tag
and the approver in git; approve a weaker candidate with an override and its second confirmation; roll
back to the first version from the history after seeing what changes; check that the model bytes and
params equal the first version's. Screenshots of each state go to tests/artifacts/models_panel/."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers.commands import nbprod, run
from helpers.paths import REPO, ARTIFACTS as ALL_ARTIFACTS
from helpers.servers import JupyterServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("NBPROD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ALL_ARTIFACTS / "models_panel"
# NBPROD_DOC_IMAGES=1 refreshes the docs' screenshots; otherwise they go with the other artifacts.
DOC_IMAGE = (REPO / "docs" / "img" if os.environ.get("NBPROD_DOC_IMAGES")
             else ARTIFACTS) / "models-panel.png"
GATES = '\n[tool.nbprod.gates]\nroc_auc = ">= 0.9"\naccuracy = ">= champion - 0.01"\n'
MODEL = ".nbprod/data/notebooks__model/train/model/value.joblib"
NAME = "Tess Operator"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tag_record(root: Path, tag: str) -> dict:
    message = run("git", "tag", "-l", "--format=%(contents)", tag, cwd=root).stdout
    return json.loads(message.split("--- nbprod record ---", 1)[1])


def installed_labextension_is_current() -> None:
    """The browser loads the labextension pip installed; a build older than the sources tests old code."""
    from jupyter_core.paths import jupyter_path

    source = REPO / "extension"
    built = [p for p in (Path(d) / "labextensions" / "nbprod" / "package.json" for d in jupyter_path()) if p.is_file()]
    if not built:
        pytest.fail("the nbprod labextension is not installed: run pip install -e .")
    newest = max(p.stat().st_mtime for p in [*(source / "src").glob("models*.ts"), *(source / "style").glob("*")])
    if built[0].stat().st_mtime < newest:
        pytest.fail(f"{built[0].parent} is older than extension/src: run pip install -e . to rebuild it")


@pytest.fixture
def lab(ran_project, tmp_path):
    """JupyterLab (shared token) on a trained, committed copy of the example project with gates."""
    installed_labextension_is_current()
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or set NBPROD_CHROMIUM)")
    project = tmp_path / "project"
    shutil.copytree(ran_project, project, symlinks=True)
    with open(project / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(GATES)
    run("git", "commit", "-q", "-am", "gates", cwd=project)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # This server's own (user-level) page config, read last with JUPYTER_PREFER_ENV_PATH=0, wins over the
    # environment's: a `jupyter labextension disable nbprod` run elsewhere must not hide the panel.
    labconfig = tmp_path / "lab" / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": {"nbprod": False}}))
    server = JupyterServer(project, tmp_path / "lab", module="jupyterlab",
                           env={"JUPYTER_PREFER_ENV_PATH": "0", "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
                                "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")})
    yield server
    server.stop()


def decide(page, note: str, override: str | None = None, confirm: bool = False) -> None:
    """Fill the open decision dialog (note, override reason, typed name) and accept it."""
    dialog = page.locator(".jp-Dialog")
    dialog.locator("textarea[name='nbprod-note']").fill(note)
    if override is not None:
        dialog.locator("textarea[name='nbprod-override']").fill(override)
    dialog.locator("input[name='nbprod-name']").fill(NAME)
    page.screenshot(path=str(ARTIFACTS / f"dialog-{note[:12].replace(' ', '-')}.png"))
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    if confirm:
        page.wait_for_selector(".jp-Dialog >> text=although it failed its gates")
        page.screenshot(path=str(ARTIFACTS / "second-confirmation.png"))
        page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_selector(".jp-Dialog", state="detached")


def widen(page, selector: str, width: int) -> None:
    """Drag the side bar's split handle left until the panel is ``width`` pixels wide."""
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] - 2, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - width, box["y"] + 200, steps=5)
    page.mouse.up()


def retrain_from_panel(page, note: str, candidate: str) -> None:
    page.fill("input[name='nbprod-retrain-note']", note)
    page.click(".jp-nbprod-retrain")
    page.wait_for_selector(".jp-nbprod-retrain-status[data-running='true']", timeout=30_000)
    assert page.locator(".jp-nbprod-retrain-cancel").is_enabled()
    page.screenshot(path=str(ARTIFACTS / f"retrain-{candidate}-running.png"))
    page.wait_for_selector(f".jp-nbprod-candidate[data-candidate='{candidate}']", timeout=300_000)


def test_retrain_approve_and_roll_back_from_the_models_panel(lab):
    from playwright.sync_api import sync_playwright

    root = lab.root
    v1 = {"model": sha(root / MODEL), "params": (root / "params.yaml").read_bytes()}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.on("console", lambda message: console.append(message.text))
        try:
            page.goto(f"{lab.base}/lab?token={lab.token}")
            page.wait_for_selector("li[data-id='nbprod-models-panel']", timeout=90_000)
            page.click("li[data-id='nbprod-models-panel']")
            widen(page, "#nbprod-models-panel", 520)
            page.wait_for_selector(".jp-nbprod-production >> text=Nothing in production yet", timeout=60_000)
            assert "shared token" in page.inner_text(".jp-nbprod-models-user")
            page.screenshot(path=str(ARTIFACTS / "01-empty.png"))

            # 1-2. Retrain from the panel; the candidate shows its gates.
            retrain_from_panel(page, "first from the panel", "c1")
            card = page.locator(".jp-nbprod-candidate[data-candidate='c1']")
            gates = card.locator(".jp-nbprod-gate")
            assert gates.count() == 2
            assert [gates.nth(i).get_attribute("data-passed") for i in range(2)] == ["true", "null"]
            assert "roc_auc >= 0.9" in gates.nth(0).inner_text() and "not checked" in gates.nth(1).inner_text()
            assert "succeeded" in page.inner_text(".jp-nbprod-retrain-status") or \
                "passed its gates" in page.inner_text(".jp-nbprod-retrain-status")
            page.screenshot(path=str(ARTIFACTS / "02-candidate-c1.png"))
            # The comparison report opens in a new tab (served by the extension: it lives in .nbprod/).
            with page.context.expect_page() as report_page:
                card.locator(".jp-nbprod-candidate-report").click()
            report = report_page.value
            report.wait_for_load_state()
            assert "c1" in report.content() and "roc_auc" in report.content()
            report.screenshot(path=str(ARTIFACTS / "02b-comparison-report.png"))
            report.close()

            # 3. Approve it with a note.
            card.locator(".jp-nbprod-approve").click()
            decide(page, "first model, checked the report")
            page.wait_for_selector(".jp-nbprod-production[data-version='v1.0.0']", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "03-approved-v1.png"))

            # 4. The tag and the approver in git.
            record = tag_record(root, "model@v1.0.0")
            assert record["by"] == f"{NAME} (typed name; single-user token server)"
            assert record["note"] == "first model, checked the report" and record["candidate"] == "c1"
            assert record["identity"]["source"] == "single-user token server"
            assert tag_record(root, "model#prod#1")["by"] == record["by"]

            # A user's edit makes a weaker candidate; approving it needs an override and a second "yes".
            params = root / "params.yaml"
            params.write_text(params.read_text().replace("C: 1.0", "C: 0.001"))
            retrain_from_panel(page, "stronger regularisation", "c2")
            card = page.locator(".jp-nbprod-candidate[data-candidate='c2']")
            assert card.get_attribute("data-passed") == "false"
            assert "params.yaml" in card.locator(".jp-nbprod-changed").inner_text()
            assert "champion v1.0.0" in card.locator(".jp-nbprod-compare").inner_text()
            page.screenshot(path=str(ARTIFACTS / "04-candidate-c2-failed-gate.png"))
            DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
            page.locator("#nbprod-models-panel").screenshot(path=str(DOC_IMAGE.with_name("models-panel-candidate.png")))
            card.locator(".jp-nbprod-approve").click()
            page.wait_for_selector(".jp-Dialog textarea[name='nbprod-override']")
            decide(page, "audit wants it", override="regularised model required by audit", confirm=True)
            page.wait_for_selector(".jp-nbprod-production[data-version='v1.1.0']", timeout=60_000)
            assert tag_record(root, "model@v1.1.0")["override"] == "regularised model required by audit"

            # The working tree now holds the weaker model (trained here, as a user would).
            nbprod("run", "--no-report", cwd=root)
            assert sha(root / MODEL) != v1["model"]
            page.click(".jp-nbprod-models-refresh")
            page.wait_for_selector(".jp-nbprod-busy", state="detached", timeout=60_000)

            # 5. Roll back to the first version, picked from the filtered history.
            page.fill("input[name='nbprod-history-filter']", "checked the report")
            page.select_option("select[name='nbprod-history-action']", "approve")
            rows = page.locator(".jp-nbprod-history-row")
            assert rows.count() == 1 and rows.first.get_attribute("data-version") == "v1.0.0"
            page.screenshot(path=str(ARTIFACTS / "05-history-filtered.png"))
            rows.first.locator(".jp-nbprod-lineage-link").click()
            details = page.locator(".jp-nbprod-version-details[data-version='v1.0.0']")
            details.wait_for(timeout=60_000)
            changes = details.locator(".jp-nbprod-changes").inner_text()
            assert "model.C" in changes and "0.001" in changes
            assert details.locator(".jp-nbprod-changes tr[data-kind='data']").count() >= 1
            assert details.locator(".jp-nbprod-changes tr[data-kind='metric']").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "06-rollback-preview.png"))
            details.locator(".jp-nbprod-rollback").click()
            decide(page, "v1.1.0 misses positives")
            page.wait_for_selector(".jp-nbprod-production[data-version='v1.0.0']", timeout=120_000)
            page.fill("input[name='nbprod-history-filter']", "")
            page.select_option("select[name='nbprod-history-action']", "")
            page.screenshot(path=str(ARTIFACTS / "07-rolled-back.png"))
            DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
            page.locator("#nbprod-models-panel").screenshot(path=str(DOC_IMAGE))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            (ARTIFACTS / "console.log").write_text("\n".join(console))
            raise
        finally:
            browser.close()
    assert any("nbprod: models panel activated" in line for line in console)

    # 6. The model bytes and params are the first version's; the registry says who rolled back and why.
    assert sha(root / MODEL) == v1["model"]
    assert (root / "params.yaml").read_bytes() == v1["params"]
    prod = sorted(t for t in run("git", "tag", cwd=root).stdout.split() if t.startswith("model#prod#"))
    last = tag_record(root, prod[-1])
    assert last["action"] == "rollback" and last["to"] == "v1.0.0" and last["from"] == "v1.1.0"
    assert last["by"] == f"{NAME} (typed name; single-user token server)" and last["note"] == "v1.1.0 misses positives"

"""``write_card``: gather a version's facts and write its card as HTML and Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.project import REPORTS_DIR, Project
from .facts import gather
from .render import sections, to_html, to_markdown

CARDS_DIR = f"{REPORTS_DIR}/cards"


@dataclass
class WrittenCard:
    html: Path
    markdown: Path


def card_paths(root: Path, model: str, version: str, folder: Path | None = None) -> WrittenCard:
    folder = folder or root / CARDS_DIR
    name = f"{model}-{version}"  # not with_suffix: "v1.0.0" has dots of its own
    return WrittenCard(folder / f"{name}.html", folder / f"{name}.md")


def write_card(project: Project, model: str, version_text: str, folder: Path | None = None) -> WrittenCard:
    facts = gather(project.root, model, version_text)
    parts = sections(facts)
    paths = card_paths(project.root, model, facts.version, folder)
    paths.html.parent.mkdir(parents=True, exist_ok=True)
    paths.html.write_text(to_html(facts, parts), encoding="utf-8")
    paths.markdown.write_text(to_markdown(facts, parts), encoding="utf-8")
    return paths

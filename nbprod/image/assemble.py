"""Run inside the image build (``python3 -m nbprod.image.assemble /app``): check the copied bundle
against its manifest, then make it a project ``nbprod serve --version`` and ``nbprod run`` accept: a
git repository of those files, the outputs in its own DVC cache, and the registration tag recreated
with the same record (approval, model hash), as ``nbprod unpack`` does for a zip."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from ..lifecycle.bundle import MANIFEST
from .context import VERSION_FILE

_IDENTITY = ["-c", "user.name=nbprod image build", "-c", "user.email=nbprod@localhost"]


def _git(app: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run(["git", *_IDENTITY, *args], cwd=app, check=True, input=stdin, text=True,
                   stdout=subprocess.DEVNULL)


def assemble(app: Path) -> str:
    manifest = json.loads((app / MANIFEST).read_bytes())
    for rel, entry in manifest["files"].items():
        data = (app / rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise SystemExit(f"nbprod image: {rel} does not match its sha256 in {MANIFEST}; build again")
    registration = json.loads((app / VERSION_FILE).read_text(encoding="utf-8"))
    _git(app, "init", "-q")
    exclude = app / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    exclude.write_text(f"{MANIFEST}\n{VERSION_FILE}\n", encoding="utf-8")
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "commit", "--force", "--quiet"], cwd=app, check=True)
    _git(app, "add", "-A")
    _git(app, "commit", "-q", "-m", f"nbprod image of {manifest['source']}")
    _git(app, "tag", "-a", registration["tag"], "HEAD", "-F", "-", stdin=registration["message"])
    return registration["tag"]


if __name__ == "__main__":
    print(f"nbprod image: {assemble(Path(sys.argv[1]))} ready in {sys.argv[1]}")

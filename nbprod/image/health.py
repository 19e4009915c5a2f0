"""The image's health check (``python3 -m nbprod.image.health PORT``): /healthz and /readyz of the
server in this container answer 200, with the bearer token from the environment when one is set.
Standard library only, so it starts in a few milliseconds."""

from __future__ import annotations

import os
import sys
import urllib.request


def check(port: int) -> None:
    token = os.environ.get("NBPROD_SERVE_TOKEN")
    for path in ("/healthz", "/readyz"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=4) as answer:
            if answer.status != 200:
                raise SystemExit(f"{path}: HTTP {answer.status}")


if __name__ == "__main__":
    try:
        check(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy" (exit 1), printed for `podman inspect`
        print(exc)
        sys.exit(1)

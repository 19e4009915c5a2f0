"""Provenance of a run: which Python, platform and installed packages produced its outputs.

One listing of installed packages with one name normalisation (PEP 503: lower case, runs of
``-``, ``_`` and ``.`` become ``-``), used by ``nbprod exec`` (the key packages recorded in each
executed notebook), ``nbprod run`` (the environment of the run, ``.nbprod/environment.json``) and
the lifecycle's lock file and drift checks, so the names they compare always agree.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
from collections.abc import Iterable

# Recorded in every executed notebook (metadata.nbprod.packages): what decides how a stage ran.
KEY_PACKAGES = ("nbprod", "papermill", "nbclient", "ipykernel", "dvc", "scikit-learn", "pandas", "numpy",
                "pyarrow", "matplotlib")

_SEPARATORS = re.compile(r"[-_.]+")


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them: ``PyYAML``, ``pyyaml`` and ``py_yaml`` differ,
    ``scikit_learn`` and ``Scikit-Learn`` are both ``scikit-learn``."""
    return _SEPARATORS.sub("-", name.strip()).lower()


def installed_packages(only: Iterable[str] | None = None) -> dict[str, str]:
    """``{canonical name: version}`` of the distributions this interpreter imports, sorted by name;
    only those named in ``only`` when given.

    Reads the names of the ``*.dist-info`` / ``*.egg-info`` folders on ``sys.path`` (one directory
    listing per path entry; the first one found wins, as for imports) instead of opening every
    distribution's metadata (many small reads); what that misses (eggs, zipped or unusual layouts) is asked
    from ``importlib.metadata``.
    """
    wanted = {canonical_name(n) for n in only} if only is not None else None
    versions: dict[str, str] = {}
    unnamed: set[str] = set()  # found without a version in the folder name (development egg-info)
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in entries:
            stem, dot, suffix = entry.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            dist, _, version = stem.partition("-")
            version = version.partition("-")[0]  # egg-info: NAME-VERSION-pyX.Y
            name = canonical_name(dist)
            if (wanted is not None and name not in wanted) or name in versions:
                continue
            if version:
                versions[name] = version
            else:
                unnamed.add(name)
    missing = unnamed - set(versions)
    if wanted is not None:
        missing |= wanted - set(versions)
    if missing:
        from importlib import metadata

        for name in missing:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
    return dict(sorted(versions.items()))


def key_packages() -> dict[str, str]:
    """Versions of KEY_PACKAGES that are installed, in KEY_PACKAGES order."""
    versions = installed_packages(KEY_PACKAGES)
    return {name: versions[name] for name in KEY_PACKAGES if name in versions}


def packages_hash(packages: dict[str, str]) -> str:
    """A digest of a package listing (order-independent): equal listings, equal hashes."""
    text = "".join(f"{name}=={version}\n" for name, version in sorted(packages.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def capture() -> dict:
    """This interpreter's environment: Python version, implementation, platform, every package."""
    packages = installed_packages()
    return {"python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": platform.platform(terse=True), "packages_sha256": packages_hash(packages),
            "packages": packages}

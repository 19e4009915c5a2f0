"""``nbprod image build`` and ``nbprod image verify``: parse arguments, print what was built or
checked; the work is in ``nbprod.image``."""

from __future__ import annotations

import argparse
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("image", help="build a registered version as an OCI image, or verify one")
    actions = p.add_subparsers(metavar="ACTION")
    b = actions.add_parser("build", help="write the version's Containerfile and build it (podman, else docker)")
    b.add_argument("version", nargs="?", help="registered version (default: the one in production)")
    b.add_argument("--tag", help="image name (default: localhost/nbprod-<model>:<version>)")
    b.add_argument("--target", choices=("serve", "run"), default="serve",
                   help="serve: nbprod serve --version VERSION (default); run: nbprod run --record")
    b.add_argument("--base", help="base image (default: [tool.nbprod.image] base, else the official slim "
                                  "Python image of the version's Python)")
    b.add_argument("--no-build", action="store_true", help="only write Containerfile and .containerignore")
    b.set_defaults(handler=cmd_image_build)
    v = actions.add_parser("verify", help="check an image's labels and bundle against the registry")
    v.add_argument("image", nargs="?", help="image name or id (default: the production version's default name)")
    v.set_defaults(handler=cmd_image_verify)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def cmd_image_build(args: argparse.Namespace) -> int:
    from ..image import containers as engines
    from ..image.context import (default_image_name, load_settings, remove_context, resolve_spec, stage_context,
                                 write_build_files)
    from ..core.project import find_project

    project = find_project()
    root = project.root
    settings = load_settings(root)
    spec = resolve_spec(project, args.version, args.base)
    path, changed = write_build_files(root, spec)
    print(f"{'Wrote' if changed else 'Unchanged:'} {path.name} for {spec.model}@{spec.version} "
          f"(base {spec.base}, {len(spec.requirements)} pinned packages, {len(spec.files)} bundle files)")
    if args.no_build:
        return 0
    tool = engines.engine(settings.engine)
    name = args.tag or default_image_name(spec.model, spec.version)
    started = time.monotonic()
    stage_context(root, spec)
    try:
        built = engines.build(tool, root, path, args.target, name, settings.network)
    finally:
        remove_context(root)
    print(f"Built {name} (target {args.target}, id {built.image_id[:19]}) in {time.monotonic() - started:.0f} s")
    return 0


def cmd_image_verify(args: argparse.Namespace) -> int:
    from ..image.verify import image_name, verify_image
    from ..core.project import find_project

    project = find_project()
    result = verify_image(project, image_name(project, args.image))
    for line in result.checks:
        print(f"ok  {line}")
    print(f"Verified {result.image}: {result.model}@{result.version} as registered")
    return 0

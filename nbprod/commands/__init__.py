"""CLI command groups kept out of ``nbprod/cli.py``; each module exposes ``register(subparsers)``."""

"""Unit tests: in-process only (no subprocess, server or kernel: tests/unit/conftest.py enforces it)."""

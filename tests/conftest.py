"""The fixtures of tests/unit and tests/func alike live in helpers/fixtures.py (helpers/ holds every shared
helper); registered here, at the top of tests/, so both folders see one set."""

pytest_plugins = ["helpers.fixtures"]

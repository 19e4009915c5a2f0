"""Monitoring of scheduled runs: immutable run records (records.py), rules and alerts (rules.py), the
offline dashboard (dashboard.py), emails (notify.py), record storage in the DVC remote (remote.py)
and housekeeping (gc.py). docs/architecture.md, "Monitoring", has the picture."""

"""Data contracts: pandera schemas kept as YAML files under ``schemas/``, validation, and drift.

Nothing here is imported by ``import nbprod``: pandera, pandas and scipy load on the first call of
``nbprod.validate`` or ``nbprod.drift`` (through ``nbprod._LAZY``).
"""

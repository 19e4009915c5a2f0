"""``nbprod card VERSION``: one model card per registered version (HTML and Markdown), in the sections
of Mitchell et al. 2019 "Model Cards for Model Reporting", rebuilt from the registry tags, the
version's commit and the DVC cache only (``facts.py`` gathers, ``render.py`` writes)."""

"""nbprod inside any notebook front end (VS Code, Notebook 7, Lab without the extension): an ipywidgets
pipeline panel (``nbprod.panel()``) and parameters form (``nbprod.params_form()``).

The kernel only draws and follows: runs are ordinary ``nbprod run`` processes in their own session,
status comes from an ``nbprod status --json`` subprocess, and ipywidgets is imported when a panel or
form is built, never by ``import nbprod``.
"""

"""The CSS shared by every page nbprod writes (inlined: pages open offline, from a file or an archive)."""

CSS = """
.nbprod { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #202124;
  max-width: 1100px; margin: 0 auto; padding: 16px 24px; line-height: 1.45; }
.nbprod h1 { font-size: 1.6em; margin: 0.2em 0 0.4em; }
.nbprod h2 { font-size: 1.2em; margin: 1.2em 0 0.4em; border-bottom: 1px solid #dadce0; padding-bottom: 4px; }
.nbprod table { border-collapse: collapse; margin: 4px 0 8px; font-size: 0.92em; }
.nbprod th, .nbprod td { border: 1px solid #dadce0; padding: 4px 10px; text-align: left; vertical-align: top; }
.nbprod th { background: #f8f9fa; font-weight: 600; }
.nbprod td.num { text-align: right; font-variant-numeric: tabular-nums; }
.nbprod code { font-family: "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.9em; }
.nbprod .grid > * { align-self: start; }
.nbprod .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 8px 24px; }
.nbprod .status { display: inline-block; padding: 1px 10px; border-radius: 10px; font-weight: 600; }
.nbprod .status-ok { background: #e6f4ea; color: #1e8e3e; }
.nbprod .status-failed { background: #fce8e6; color: #d93025; }
.nbprod .status-not-run, .nbprod .status-unknown { background: #f1f3f4; color: #5f6368; }
.nbprod .banner { background: #fce8e6; border: 2px solid #d93025; color: #a50e0e; padding: 12px 16px;
  border-radius: 6px; margin: 12px 0; font-size: 1.05em; }
.nbprod .banner a { color: #a50e0e; font-weight: 600; }
.nbprod .metric { display: inline-block; border: 1px solid #dadce0; border-radius: 8px; padding: 8px 14px;
  margin: 4px 8px 4px 0; min-width: 110px; }
.nbprod .metric .name { font-size: 0.8em; color: #5f6368; }
.nbprod .metric .value { font-size: 1.4em; font-weight: 600; }
.nbprod .figures img { max-width: 100%; border: 1px solid #dadce0; margin: 4px 0; }
.nbprod .muted { color: #5f6368; }
.nbprod .up { color: #1e8e3e; } .nbprod .down { color: #d93025; }
.nbprod details summary { cursor: pointer; color: #1a73e8; }
.nbprod svg text { font-family: inherit; fill: #202124; }
.nbprod a.stage-node:hover rect { stroke-width: 3; }
.nbprod .charts { display: flex; flex-wrap: wrap; gap: 12px; }
.nbprod-divider { border: 0; border-top: 3px solid #dadce0; margin: 8px 0 16px; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body><div class="nbprod">{body}</div></body></html>
"""


def page(title: str, body: str) -> str:
    """A complete standalone HTML page (``title`` must already be escaped)."""
    return PAGE.format(title=title, css=CSS, body=body)

"""The stage report's explanation section: the top features' importance as a table and an Agg chart
(the rest folded into one bar and a collapsed table), SHAP or partial dependence of the top three,
and a reading in plain words. Shown as the explaining cell's outputs."""

from __future__ import annotations

import math
from html import escape

STYLE = ("<style>.nbprod-explain td,.nbprod-explain th{padding:.2rem .5rem;border:1px solid #ddd;"
         "text-align:right;white-space:nowrap}.nbprod-explain td:nth-child(2){text-align:left}</style>")
DEPENDENCE = 3


def _row(feature: str, row) -> str:
    shap = row.get("shap", math.nan)
    shap_text = "—" if shap is None or not math.isfinite(shap) else f"{shap:.4g}"
    return (f"<tr><td>{int(row['rank'])}</td><td>{escape(feature)}</td><td>{row['share']:.1%}</td><td>{shap_text}</td>"
            f"<td>{row['permutation']:.4g} ± {row['permutation_std']:.2g}</td></tr>")


def table_html(result) -> str:
    head = ("<tr><th>rank</th><th>feature</th><th>share</th><th>mean |SHAP|</th>"
            "<th>permutation importance</th></tr>")
    rows = [_row(f, r) for f, r in result.importance.iterrows()]
    shown, folded = rows[:result.top], rows[result.top:]
    parts = [STYLE, '<div class="nbprod-explain"><h3>What the model relies on</h3>',
             f"<table>{head}{''.join(shown)}</table>"]
    if folded:
        rest = float(result.importance["share"].iloc[result.top:].sum())
        parts.append(f"<details><summary>{len(folded)} more features ({rest:.1%} of the importance together)"
                     f"</summary><table>{head}{''.join(folded)}</table></details>")
    parts.append(f"<p><small>{escape(method_note(result))}</small></p></div>")
    return "".join(parts)


def method_note(result) -> str:
    if result.method == "shap":
        text = (f"Share: each feature's mean absolute SHAP value ({result.explainer}, {result.output}, "
                f"{result.shap_rows} rows) over their sum.")
    else:
        text = "Share: each feature's permutation importance (clipped at 0) over their sum."
        if result.fallback:
            text += f" shap could not explain this model: {result.fallback}."
    return text + f" Permutation importance: {result.scoring}, on {result.rows} rows."


def chart(result):
    """A matplotlib Figure (Agg canvas, no pyplot state): the top features' shares, the rest as one bar."""
    from matplotlib.figure import Figure

    table = result.importance
    labels = list(table.index[:result.top])
    values = [float(v) for v in table["share"].iloc[:result.top]]
    if len(table) > result.top:
        labels.append(f"other {len(table) - result.top} features")
        values.append(float(table["share"].iloc[result.top:].sum()))
    figure = Figure(figsize=(6.4, 1.2 + 0.32 * len(labels)))
    axis = figure.add_subplot()
    colors = ["#1f5fa8"] * min(len(table), result.top) + ["#999999"] * (len(labels) > result.top)
    axis.barh(range(len(labels))[::-1], values, color=colors)
    axis.set_yticks(range(len(labels))[::-1])
    axis.set_yticklabels(labels)
    axis.set_xlabel("share of the model's importance (" + ("mean |SHAP|" if result.method == "shap"
                                                           else "permutation importance") + ")")
    axis.set_title("What the model relies on")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def dependence(result, model, X):
    """SHAP dependence (value against contribution) of the top features, else scikit-learn's partial
    dependence; None when no top feature is numeric."""
    import numpy as np
    from matplotlib.figure import Figure

    top = [f for f in result.importance.index[:DEPENDENCE * 2] if X[f].dtype.kind in "biuf"][:DEPENDENCE]
    if not top:
        return None
    figure = Figure(figsize=(3.2 * len(top), 2.8))
    for i, feature in enumerate(top, 1):
        axis = figure.add_subplot(1, len(top), i)
        if result.method == "shap":
            column = result.features.index(feature)
            axis.scatter(result.shap_data[feature], result.shap_values[:, column], s=8, alpha=0.6, color="#1f5fa8")
            axis.axhline(0, color="#999999", linewidth=0.8)
            axis.set_ylabel("SHAP value" if i == 1 else "")
        else:
            from sklearn.inspection import partial_dependence

            found = partial_dependence(model, X, [feature], kind="average", grid_resolution=30)
            grid = found["grid_values"][0]
            axis.plot(grid, np.asarray(found["average"])[-1], color="#1f5fa8")
            axis.set_ylabel("partial dependence" if i == 1 else "")
        axis.set_xlabel(feature)
    figure.suptitle(("SHAP dependence" if result.method == "shap" else "Partial dependence") +
                    " of the top features", fontsize="medium")
    figure.tight_layout()
    return figure


def reading(result) -> str:
    """One paragraph in plain words."""
    shares = result.importance["share"]
    if float(shares.sum()) <= 0:
        return ("No feature matters measurably: permuting any one of them leaves the model's "
                f"{result.scoring} unchanged.")
    lead = [f for f, s in shares.items() if s >= 0.5 * float(shares.iloc[0])][:3]
    named = " and ".join([", ".join(lead[:-1]), lead[-1]] if len(lead) > 1 else lead)
    carried = float(shares[lead].sum())
    sentences = [f"The model relies mostly on {named} ({carried:.0%} of its importance)."]
    five = min(5, len(shares))
    if len(shares) > five:
        sentences.append(f"The top {five} of {len(shares)} features carry {float(shares.iloc[:five].sum()):.0%}; "
                         f"{int((shares < 0.005).sum())} contribute under 0.5% each.")
    if result.method == "shap":
        agree = result.importance["permutation"].idxmax() == shares.index[0]
        sentences.append(f"Measured with SHAP values of the {result.output}; permutation importance "
                         + ("agrees on the top feature." if agree else
                            f"ranks {result.importance['permutation'].idxmax()} first instead."))
    else:
        why = f" because shap could not explain it ({result.fallback})" if result.fallback else ""
        sentences.append(f"Measured with permutation importance only{why}.")
    return " ".join(sentences)


def show(result, model=None, X=None) -> None:
    """Display the section as the running cell's outputs (nothing outside IPython)."""
    from ..record import kernel_display, record

    display = kernel_display()
    if display is None:
        return
    from IPython.display import HTML

    display(HTML(table_html(result)))
    record("explain.chart", chart(result))
    if model is not None and X is not None:
        figure = dependence(result, model, X)
        if figure is not None:
            record("explain.dependence", figure)
    display(HTML(f'<p class="nbprod-explain-reading">{escape(reading(result))}</p>'))

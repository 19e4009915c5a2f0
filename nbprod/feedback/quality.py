"""Quality figures on joined rows (numpy, the definitions scikit-learn uses), the confidence-based
estimate from calibrated probabilities alone, and the A/B verdict with its confidence interval.

Classifiers: accuracy; precision, recall and F1 of the positive class (the model's second class,
scikit-learn's ``pos_label=1`` for 0/1 labels) or, past two classes, their macro average; ROC AUC
(two classes) and log loss where probabilities were logged. Regressors: MAE, RMSE, R².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95, Z_POWER80 = 1.959963984540054, 0.8416212335729143


def classifier_figures(truth, predicted, proba, n_classes: int) -> dict[str, float]:
    """``truth``/``predicted``: class codes (0..k-1); ``proba``: (n, k) or None."""
    import numpy as np

    out = {"accuracy": float(np.mean(truth == predicted))}
    positives = [1] if n_classes == 2 else range(n_classes)
    precision, recall, f1 = [], [], []
    for c in positives:
        tp = float(np.sum((predicted == c) & (truth == c)))
        fp = float(np.sum((predicted == c) & (truth != c)))
        fn = float(np.sum((predicted != c) & (truth == c)))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    out.update(precision=float(np.mean(precision)), recall=float(np.mean(recall)), f1=float(np.mean(f1)))
    if proba is not None:
        if n_classes == 2:
            auc = roc_auc(truth == 1, proba[:, 1])
            if auc is not None:
                out["roc_auc"] = auc
        eps = np.finfo(proba.dtype).eps
        chosen = np.clip(proba[np.arange(len(truth)), truth], eps, 1 - eps)
        out["log_loss"] = float(-np.mean(np.log(chosen)))
    return out


def roc_auc(positive, score) -> float | None:
    """Area under the ROC curve by ranks (ties share their mean rank); None with one class only."""
    import numpy as np

    n_pos = int(np.sum(positive))
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return None
    ranks = _mean_ranks(np.asarray(score))
    return float((np.sum(ranks[positive]) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _mean_ranks(values):
    """Ranks from 1, ties sharing their mean rank (scipy.stats.rankdata's default, without its 3 s import)."""
    import numpy as np

    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[0, np.nonzero(np.diff(ordered))[0] + 1]
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def regressor_figures(truth, predicted) -> dict[str, float]:
    import numpy as np

    error = predicted - truth
    out = {"mae": float(np.mean(np.abs(error))), "rmse": float(math.sqrt(np.mean(error ** 2)))}
    total = float(np.sum((truth - truth.mean()) ** 2))
    if len(truth) > 1 and total > 0:
        out["r2"] = 1.0 - float(np.sum(error ** 2)) / total
    return out


def estimated_figures(predicted, proba, n_classes: int, auc: bool = True) -> dict[str, float]:
    """Confidence-based estimates from calibrated probabilities alone (no outcomes): the expected
    accuracy is the mean probability of the predicted class; the expected ROC AUC treats each row as
    positive with its own probability and integrates the expected TPR over the expected FPR."""
    import numpy as np

    out = {"estimated_accuracy": float(np.mean(proba[np.arange(len(predicted)), predicted]))}
    if n_classes == 2 and auc:
        score = proba[:, 1]
        order = np.argsort(-score, kind="stable")
        s = score[order]
        tp, fp = np.cumsum(s), np.cumsum(1 - s)
        last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # one point per distinct threshold
        if tp[-1] > 0 and fp[-1] > 0:
            tpr = np.r_[0.0, tp[last] / tp[-1]]
            fpr = np.r_[0.0, fp[last] / fp[-1]]
            out["estimated_roc_auc"] = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return out


@dataclass
class Verdict:
    """The challenger against production on one figure, from per-row scores on labelled rows."""
    figure: str                  # accuracy | mae
    prod_n: int
    challenger_n: int
    prod: float | None
    challenger: float | None
    difference: float | None     # challenger - prod
    low: float | None            # 95 % confidence interval of the difference
    high: float | None
    decision: str                # better | worse | not enough yet
    text: str
    more_needed: int | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def ab_verdict(prod_scores, challenger_scores, figure: str, higher_is_better: bool, min_outcomes: int) -> Verdict:
    """Difference of the means with a normal (Wald) 95 % interval: for accuracy, the two-proportion
    interval. "not enough yet" says about how many more outcomes (at the current split) would make
    the observed difference significant at 5 % with 80 % power."""
    import numpy as np

    n_p, n_c = len(prod_scores), len(challenger_scores)
    if min(n_p, n_c) == 0:
        return Verdict(figure, n_p, n_c, None, None, None, None, None, "not enough yet",
                       "not enough outcomes yet: no labelled rows for " + ("the challenger" if not n_c else "prod"))
    m_p, m_c = float(np.mean(prod_scores)), float(np.mean(challenger_scores))
    v_p, v_c = float(np.var(prod_scores, ddof=1)) if n_p > 1 else 0.0, \
        float(np.var(challenger_scores, ddof=1)) if n_c > 1 else 0.0
    d = m_c - m_p
    se = math.sqrt(v_p / n_p + v_c / n_c)
    low, high = d - Z95 * se, d + Z95 * se
    share = n_c / (n_p + n_c)
    need = None
    if d != 0 and (v_p + v_c) > 0:
        total = (Z95 + Z_POWER80) ** 2 * (v_c / share + v_p / (1 - share)) / d ** 2
        need = max(0, math.ceil(total) - (n_p + n_c))
    gain = d if higher_is_better else -d
    enough = min(n_p, n_c) >= min_outcomes
    if enough and se > 0 and (low > 0 or high < 0):
        decision = "better" if gain > 0 else "worse"
        text = (f"challenger is {decision}: {figure} {m_c:.4g} vs {m_p:.4g}, difference {d:+.4g} "
                f"(95% CI {low:+.4g} to {high:+.4g}; {n_c} and {n_p} outcomes)")
    else:
        decision = "not enough yet"
        if not enough:
            more = max(0, min_outcomes - n_c) + max(0, min_outcomes - n_p)
            need = max(need or 0, more)
        text = (f"not enough outcomes yet: {figure} {m_c:.4g} vs {m_p:.4g}, difference {d:+.4g} "
                f"(95% CI {low:+.4g} to {high:+.4g}); "
                + (f"about {need} more needed for this effect size" if need is not None
                   else "no difference seen so far"))
    return Verdict(figure, n_p, n_c, m_p, m_c, d, low, high, decision, text, need)

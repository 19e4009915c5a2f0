"""A synthetic loan-applicant data set with a group attribute and a documented, known bias.

Generated here, from a seed, so the project never downloads anything. Every applicant has:

- ``group``: A (about 68%), B (about 30%) or C (about 2%, too small to judge in a holdout);
- ``income``, ``debt_ratio``, ``years_employed``, ``late_payments``: the same distributions in
  every group, and the only causes of ``repaid``;
- ``postcode_score``: a neighbourhood score that is lower for group B on average and says nothing
  about repayment: a proxy for the group;
- ``repaid``: whether the applicant would repay (the outcome we care about; a real lender only
  knows it for the applicants it accepted);
- ``approved``: the historical decision, the label a model is trained on.

The known bias: in the historical decisions, a share ``label_bias`` (default 0.5) of group B's
applicants who would repay were refused. The outcome itself does not depend on the group. A model
trained on ``approved`` learns to refuse group B more often, through ``postcode_score`` even when
the group is not a feature; the fairness audit (against ``repaid``) shows it as a lower selection
rate and recall for group B.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUPS = ("A", "B", "C")
GROUP_SHARES = (0.68, 0.30, 0.02)


def make_applicants(n: int = 4000, seed: int = 0, label_bias: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(GROUPS, size=n, p=GROUP_SHARES)
    income = rng.lognormal(mean=10.6, sigma=0.45, size=n).round(-1)
    debt_ratio = rng.beta(2.0, 5.0, size=n).round(3)
    years_employed = rng.gamma(2.0, 3.0, size=n).round(1)
    late_payments = rng.poisson(0.8, size=n)
    postcode_score = rng.normal(np.where(group == "B", -1.5, 0.5), 1.0).round(3)
    logit = (0.4 + 1.3 * (np.log(income) - 10.6) / 0.45 - 6.0 * (debt_ratio - 0.28)
             + 0.12 * (years_employed - 6.0) - 0.7 * (late_payments - 0.8))
    repaid = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    refused_anyway = (group == "B") & (rng.random(n) < label_bias)
    approved = repaid & ~refused_anyway
    return pd.DataFrame({"group": group, "income": income, "debt_ratio": debt_ratio,
                         "years_employed": years_employed, "late_payments": late_payments,
                         "postcode_score": postcode_score, "repaid": repaid.astype(int),
                         "approved": approved.astype(int)})

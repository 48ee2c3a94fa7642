#!/usr/bin/env python3
"""Independent reference values for discus-core's agreement statistics.

Reads {"cases": [{"id": ..., "categories": q, "ratings": [[rating or null per rater] per subject]}]}
as JSON on stdin and prints {"<id>": {"<statistic key>": value or null}} as JSON on stdout, computed
with the reference Python packages only (never with discus):

  scikit-learn  cohen_kappa_score (unweighted, linear, quadratic), raters 0 and 1, subjects both rated
  statsmodels   fleiss_kappa on aggregate_raters, complete subjects only (Fleiss needs equal raters)
  krippendorff  alpha nominal / ordinal / interval, missing ratings as NaN
  irrCAC        Gwet AC1 / AC2 (linear, quadratic) and percent agreement (Gwet's p_a, identity weights)

The key names are discus's Statistic::key(). Run through scripts/pyvenv with the versions pinned in
crates/discus-core/tests/agreement_python.rs.

Note on "ordinal": krippendorff's level_of_measurement="ordinal" is Krippendorff's own ordinal metric
(cumulative marginal frequencies), which discus implements. irrCAC's krippendorff() with
weights="ordinal" uses Gwet's ordinal weights instead and gives another number (0.68134 versus
0.745665 on the spec's reference table); it is printed as "irrcac_krippendorff_ordinal_weights" for
the record but is not what discus calls ordinal.
"""
import json
import math
import sys

import numpy as np
import pandas as pd
import krippendorff
from irrCAC.raw import CAC
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa


def clean(v):
    v = float(v)
    return v if math.isfinite(v) else None


def one(case):
    q = case["categories"]
    cats = list(range(q))
    data = np.array(
        [[np.nan if r is None else float(r) for r in row] for row in case["ratings"]], dtype=float
    )
    out = {}
    # Cohen, raters 0 and 1.
    both = ~np.isnan(data[:, 0]) & ~np.isnan(data[:, 1])
    a, b = data[both, 0].astype(int), data[both, 1].astype(int)
    for w, key in [(None, "unweighted"), ("linear", "linear"), ("quadratic", "quadratic")]:
        if len(a) == 0:
            out[f"cohen_kappa_{key}"] = None
            continue
        with np.errstate(all="ignore"):
            out[f"cohen_kappa_{key}"] = clean(cohen_kappa_score(a, b, labels=cats, weights=w))
    # Fleiss on complete subjects.
    complete = data[~np.isnan(data).any(axis=1)].astype(int)
    if len(complete) > 0 and data.shape[1] >= 2:
        table, _ = aggregate_raters(complete, n_cat=q)
        with np.errstate(all="ignore"):
            out["fleiss_kappa_complete"] = clean(fleiss_kappa(table, method="fleiss"))
    else:
        out["fleiss_kappa_complete"] = None
    # Krippendorff: reliability data is raters x units.
    for level in ["nominal", "ordinal", "interval"]:
        try:
            with np.errstate(all="ignore"):
                v = krippendorff.alpha(
                    reliability_data=data.T, level_of_measurement=level, value_domain=cats
                )
            out[f"krippendorff_alpha_{level}"] = clean(v)
        except (ValueError, ZeroDivisionError):
            out[f"krippendorff_alpha_{level}"] = None
    # Gwet (irrCAC), rows = subjects, columns = raters, NaN = missing.
    df = pd.DataFrame(data)
    for w, key in [("identity", "gwet_ac1"), ("linear", "gwet_ac2_linear"),
                   ("quadratic", "gwet_ac2_quadratic")]:
        try:
            est = CAC(df, weights=w, categories=cats, digits=14).gwet()["est"]
            out[key] = clean(est["coefficient_value"])
            if w == "identity":
                out["percent_agreement"] = clean(est["pa"])
        except (ValueError, ZeroDivisionError):
            out[key] = None
    try:
        out["irrcac_krippendorff_ordinal_weights"] = clean(
            CAC(df, weights="ordinal", categories=cats, digits=14).krippendorff()["est"][
                "coefficient_value"
            ]
        )
    except (ValueError, ZeroDivisionError):
        out["irrcac_krippendorff_ordinal_weights"] = None
    return out


def main():
    cases = json.load(sys.stdin)["cases"]
    json.dump({c["id"]: one(c) for c in cases}, sys.stdout)


if __name__ == "__main__":
    main()

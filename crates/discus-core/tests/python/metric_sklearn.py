"""Independent computation of the LumbarDISC competition metric (spec section 5) on scikit-learn's log_loss.

Usage: python metric_sklearn.py CASES.json  > RESULTS.json

CASES.json is a list of cases; each case is {"rows": [[study_id, group, grade_or_null, [p0, p1, p2]], ...]}
with group one of "spinal", "foraminal", "subarticular" and grade 0 (Normal/Mild), 1 (Moderate),
2 (Severe) or null (missing label: not scored). Prints, per case, [spinal, foraminal, subarticular,
any_severe_spinal, score].

The semantics come from the installed scikit-learn, not from this script: scikit-learn < 1.5 clips each
row to [eps, 1-eps] and renormalises it (what the competition was scored with); >= 1.5 clips only.
"""
import json
import sys
import warnings

import numpy as np
import sklearn
from sklearn.metrics import log_loss

WEIGHT = {0: 1.0, 1: 2.0, 2: 4.0}


def case_score(rows):
    terms = []
    for group in ("spinal", "foraminal", "subarticular"):
        scored = [r for r in rows if r[1] == group and r[2] is not None]
        y = [r[2] for r in scored]
        p = np.array([r[3] for r in scored], dtype=np.float64)
        w = [WEIGHT[g] for g in y]
        terms.append(log_loss(y, p, labels=[0, 1, 2], sample_weight=w))
    # any severe spinal: per study with at least one scored spinal row
    studies = {}
    for r in rows:
        if r[1] == "spinal" and r[2] is not None:
            studies.setdefault(r[0], []).append(r)
    y, p, w = [], [], []
    for sid, rs in studies.items():
        y.append(1 if any(r[2] == 2 for r in rs) else 0)
        w.append(max(WEIGHT[r[2]] for r in rs))
        p.append(max(r[3][2] for r in rs))  # raw severe value, not renormalised
    terms.append(log_loss(y, np.array(p, dtype=np.float64), labels=[0, 1], sample_weight=w))
    return terms + [sum(terms) / 4.0]


def main():
    warnings.simplefilter("ignore")  # unnormalised rows warn; that is the point of some cases
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = {"sklearn": sklearn.__version__, "scores": [case_score(c["rows"]) for c in cases]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

"""A reference point for the graders: multinomial logistic regression on the raw pixels of a crop
cache's grader crops, per condition group, scikit-learn.

Usage: crop_logreg.py CACHE [FOLDS=5]   (needs numpy and scikit-learn, e.g. in a throwaway venv)

CACHE is a `discus train --cache` folder (shard-*.json beside shard-*.f32: per study, each crop's
group, [offset, length] into the little-endian f32 file, condition, level and grade index). Studies
whose id % FOLDS == 0 are held out, as in `discus train --folds` and the grader_probe example.
Fits on the rest with the competition's severity weights (1, 2, 4) as sample weights and prints
each group's held-out weighted cross-entropy (the metric's per-group log loss, before any-severe).
"""
import glob
import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

WEIGHTS = np.array([1.0, 2.0, 4.0])


def main():
    cache = sys.argv[1]
    folds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    x, y, study = {}, {}, {}
    for index in sorted(glob.glob(f"{cache}/shard-*.json")):
        values = np.memmap(index[: -len(".json")] + ".f32", dtype="<f4", mode="r")
        for s in json.load(open(index)):
            for group, (at, n), _condition, _level, grade in s["crops"]:
                x.setdefault(group, []).append(np.array(values[at : at + n]))
                y.setdefault(group, []).append(grade)
                study.setdefault(group, []).append(s["study"])
    for group in x:
        gx, gy, gs = np.stack(x[group]), np.array(y[group]), np.array(study[group])
        held = gs % folds == 0
        print(f"{group}: {(~held).sum()} training crops, {held.sum()} held out, grades {np.bincount(gy)}")
        for c in (0.001, 0.01):
            m = LogisticRegression(C=c, max_iter=2000)
            m.fit(gx[~held], gy[~held], sample_weight=WEIGHTS[gy[~held]])
            p = np.clip(m.predict_proba(gx[held]), 1e-7, 1.0)
            w = WEIGHTS[gy[held]]
            wce = -(w * np.log(p[np.arange(held.sum()), gy[held]])).sum() / w.sum()
            print(f"  C={c}: held-out weighted cross-entropy {wce:.4f}")


if __name__ == "__main__":
    main()

"""Judges a `discus predict` output against a synthetic subset, for bench/model.sh.

Usage: model_eval.py SUBSET PRED_DIR

Reads SUBSET/train.csv (the designated reader's grades), SUBSET/truth.json (true structure centres,
patient mm) and PRED_DIR/<study>/findings.json. Prints JSON:
- loc_median_mm: per condition, the median distance (mm, 3D) from the predicted point to the true
  structure centre, over findings with a point; loc_points: how many;
- point_source: counts of the findings' point sources;
- auc_severe: ROC AUC of P(severe) for "severe" vs the rest over labelled findings (Mann-Whitney,
  ties count half);
- ece: expected calibration error of the top-label confidence, 10 equal-width bins, labelled
  findings.
Independent of discus: plain Python on the files.
"""
import csv
import json
import math
import os
import sys
from collections import defaultdict

GRADES = {"Normal/Mild": 0, "Moderate": 1, "Severe": 2}


def read_grades(subset):
    """SUBSET/train.csv as {row_id: grade index}, over its graded cells."""
    labels = {}
    with open(os.path.join(subset, "train.csv"), newline="") as f:
        r = csv.reader(f)
        head = next(r)
        for row in r:
            for col, v in zip(head[1:], row[1:]):
                if v in GRADES:
                    labels[f"{row[0]}_{col}"] = GRADES[v]
    return labels


def main():
    subset, pred = sys.argv[1], sys.argv[2]
    labels = read_grades(subset)
    truth = json.load(open(os.path.join(subset, "truth.json")))
    centres = {}
    for s in truth["studies"]:
        for p in s["truth_points"]:
            centres[(str(s["study_id"]), p["condition"], p["level"])] = p["patient_mm"]
    errs = defaultdict(list)
    sources = defaultdict(int)
    scored = []  # (probs, label)
    for s in truth["studies"]:
        sid = str(s["study_id"])
        path = os.path.join(pred, sid, "findings.json")
        if not os.path.exists(path):
            continue
        fj = json.load(open(path))
        for fi in fj["findings"]:
            sources[fi["point_source"]] += 1
            pt = fi.get("point")
            c = centres.get((sid, fi["condition"], fi["level"]))
            if pt and c:
                errs[fi["condition"]].append(math.dist(pt["patient_mm"], c))
            y = labels.get(fi["row_id"])
            if y is not None:
                scored.append((fi["probabilities"], y))
    med = {}
    for k, v in sorted(errs.items()):
        v.sort()
        n = len(v)
        med[k] = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    # AUC of P(severe).
    pos = [p[2] for p, y in scored if y == 2]
    neg = [p[2] for p, y in scored if y != 2]
    auc = None
    if pos and neg:
        allv = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
        ranks, i = {}, 0
        rank_sum = 0.0
        while i < len(allv):
            j = i
            while j < len(allv) and allv[j][0] == allv[i][0]:
                j += 1
            avg = (i + 1 + j) / 2
            rank_sum += avg * sum(1 for t in allv[i:j] if t[1] == 1)
            i = j
        auc = (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    # ECE, top label, 10 bins.
    bins = [[0, 0.0, 0.0] for _ in range(10)]
    for p, y in scored:
        k = max(range(3), key=lambda i: p[i])
        b = min(int(p[k] * 10), 9)
        bins[b][0] += 1
        bins[b][1] += p[k]
        bins[b][2] += 1.0 if k == y else 0.0
    ece = sum(abs(a - c) for n, c, a in bins if n) / max(len(scored), 1)
    print(
        json.dumps(
            {
                "loc_median_mm": med,
                "loc_points": {k: len(v) for k, v in errs.items()},
                "point_source": sources,
                "auc_severe": auc,
                "ece": ece,
                "labelled_findings": len(scored),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

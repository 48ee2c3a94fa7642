"""Splits a `discus predict` output's loss by how far its slice is from the labelled one.

Usage: model_slices.py SUBSET PRED_DIR

Reads SUBSET/train.csv (grades), SUBSET/train_label_coordinates.csv (the labelled series and
instance of every finding) and PRED_DIR/<study>/findings.json (the predicted point's series and
instance, and the probabilities). For each condition group (spinal, foraminal, subarticular) prints
the weighted log loss (weights 1/2/4 for Normal/Mild, Moderate, Severe; probabilities renormalised;
the per-group value of the competition metric) over all labelled findings, then over the findings
whose point is on the labelled slice, one slice off, two or more slices off, on another series, or
has no point. The "all" line is the group's score as `discus score` gives it; the split shows how
much of it comes from choosing the slice. Prints JSON.
Independent of discus: plain Python on the files.
"""
import csv
import json
import math
import os
import sys
from collections import defaultdict

from model_eval import read_grades

WEIGHTS = [1.0, 2.0, 4.0]


def key(study, condition, level):
    return f"{study}_{condition.lower().replace(' ', '_')}_{level.lower().replace('/', '_')}"


def group(condition):
    if condition.startswith("spinal"):
        return "spinal"
    return "foraminal" if "foraminal" in condition else "subarticular"


def main():
    subset, pred = sys.argv[1], sys.argv[2]
    grades = read_grades(subset)
    labelled = {}
    with open(os.path.join(subset, "train_label_coordinates.csv"), newline="") as f:
        for row in csv.DictReader(f):
            k = key(row["study_id"], row["condition"], row["level"])
            labelled[k] = (int(row["series_id"]), int(row["instance_number"]))
    # group -> category -> [sum of w * loss, sum of w, findings]
    acc = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0, 0]))
    for study in sorted(os.listdir(pred)):
        path = os.path.join(pred, study, "findings.json")
        if not os.path.isfile(path):
            continue
        for f in json.load(open(path))["findings"]:
            k = f["row_id"]
            if k not in grades:
                continue
            g = grades[k]
            p = f["probabilities"]
            loss = -math.log(max(p[g] / sum(p), 1e-15))
            pt = f.get("point")
            if pt is None:
                cat = "no point"
            elif k not in labelled:
                cat = "no labelled point"
            elif pt["series"] != labelled[k][0]:
                cat = "another series"
            else:
                off = abs(pt["instance"] - labelled[k][1])
                cat = ["same slice", "one slice off"][off] if off < 2 else "two or more off"
            for c in ("all", cat):
                a = acc[group(f["condition"])][c]
                a[0] += WEIGHTS[g] * loss
                a[1] += WEIGHTS[g]
                a[2] += 1
    out = {
        grp: {
            cat: {"findings": n, "weighted_log_loss": round(s / w, 4) if w else None}
            for cat, (s, w, n) in sorted(cats.items())
        }
        for grp, cats in sorted(acc.items())
    }
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

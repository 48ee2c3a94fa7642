#!/usr/bin/env python3
"""Benchmark data for `discus reads`: N studies (default 1975, the real training set's size) read by
R simulated readers (truth grades with the real set's skew, each reader moving a grade one step with
probability 0.25). Writes <out>/readers/<r>/train.csv in the LumbarDISC shape. Stdlib only.

Usage: bench/reads_bench.py OUT [STUDIES] [READERS]; then see bench/reads_bench.sh.
"""
import os
import random
import sys

COND = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing",
        "right_neural_foraminal_narrowing", "left_subarticular_stenosis",
        "right_subarticular_stenosis"]
LEVELS = ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"]
GRADES = ["Normal/Mild", "Moderate", "Severe"]


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1975
    readers = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    rng = random.Random(7)
    truth = [[0 if (u := rng.random()) < 0.75 else 1 if u < 0.92 else 2 for _ in range(25)]
             for _ in range(n)]
    header = "study_id," + ",".join(f"{c}_{l}" for c in COND for l in LEVELS)
    for r in range(readers):
        d = os.path.join(out, "readers", f"r{r}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "train.csv"), "w") as f:
            f.write(header + "\n")
            for i, row in enumerate(truth):
                cells = []
                for g in row:
                    if rng.random() < 0.25:
                        g = 1 if g != 1 else rng.choice([0, 2])
                    cells.append(GRADES[g])
                f.write(f"{1000000 + i}," + ",".join(cells) + "\n")


if __name__ == "__main__":
    main()

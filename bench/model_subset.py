"""Splits a `discus synth` cohort into LumbarDISC-layout subsets by site, for bench/model.sh.

Usage: model_subset.py COHORT OUT SHIFT_SITE N_TRAIN N_HELD N_TUNE N_SHIFT

The cohort's truth.json gives each study's site. Studies of every site but SHIFT_SITE (0-based,
in order of first appearance) go to OUT/train (the first N_TRAIN) and OUT/held (the next N_HELD);
studies of SHIFT_SITE go to OUT/tune (the first N_TUNE) and OUT/shift (the next N_SHIFT). Each subset
gets the rows of the label CSVs of its studies, its studies' image folders (symbolic links) and its
studies' entries of truth.json. Prints the counts as JSON.
"""
import csv
import json
import os
import shutil
import sys

# The LumbarDISC file names (spec: ../shared/spec/lumbardisc.md section 2); in Rust they belong to
# discus_core::layout, this helper script only mirrors them.
IMAGES = "train_images"
CARD = "dataset.toml"
CSVS = ["train.csv", "train_label_coordinates.csv", "train_series_descriptions.csv"]


def main():
    cohort, out, shift_site = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n_train, n_held, n_tune, n_shift = (int(v) for v in sys.argv[4:8])
    truth = json.load(open(os.path.join(cohort, "truth.json")))
    studies = truth["studies"]
    sites = []
    for s in studies:
        if s["site"] not in sites:
            sites.append(s["site"])
    shift_name = sites[shift_site]
    inside = [s for s in studies if s["site"] != shift_name]
    outside = [s for s in studies if s["site"] == shift_name]
    parts = {
        "train": inside[:n_train],
        "held": inside[n_train : n_train + n_held],
        "tune": outside[:n_tune],
        "shift": outside[n_tune : n_tune + n_shift],
    }
    counts = {}
    for name, members in parts.items():
        ids = {str(s["study_id"]) for s in members}
        root = os.path.join(out, name)
        os.makedirs(os.path.join(root, IMAGES), exist_ok=True)
        for sid in sorted(ids):
            link = os.path.join(root, IMAGES, sid)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(os.path.join(cohort, IMAGES, sid)), link)
        for f in CSVS:
            with open(os.path.join(cohort, f), newline="") as src:
                rows = list(csv.reader(src))
            with open(os.path.join(root, f), "w", newline="") as dst:
                w = csv.writer(dst, lineterminator="\n")
                w.writerow(rows[0])
                w.writerows(r for r in rows[1:] if r and r[0] in ids)
        # The subset carries its source's dataset card (licence and permitted uses travel with it).
        card = os.path.join(cohort, CARD)
        if os.path.isfile(card):
            shutil.copyfile(card, os.path.join(root, CARD))
        sub = dict(truth)
        sub["studies"] = members
        json.dump(sub, open(os.path.join(root, "truth.json"), "w"))
        counts[name] = len(members)
    counts["shift_site"] = shift_name
    print(json.dumps(counts))


if __name__ == "__main__":
    main()

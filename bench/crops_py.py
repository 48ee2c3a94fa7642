"""The crop pipeline a Kaggle team would write, for bench/crops.sh: pydicom reads every slice of a
labelled series, numpy sorts them along the slice normal and normalises the stack (0.5 / 99.5
percentiles -> [0, 1]), scipy.ndimage.map_coordinates (order 1) samples a 3 x 32 x 32 crop at
1.5 mm around every labelled point. Prints the same JSON as the Rust example `crops`.

Usage: crops_py.py DATASET
"""
import csv
import json
import os
import sys
import time

import numpy as np
import pydicom
from scipy.ndimage import map_coordinates

S, H, W, MM = 3, 32, 32, 1.5


def load_series(folder):
    """Slices of one series grouped by orientation, each group sorted along its normal."""
    groups = {}
    for name in os.listdir(folder):
        d = pydicom.dcmread(os.path.join(folder, name))
        iop = tuple(round(float(v), 4) for v in d.ImageOrientationPatient)
        img = d.pixel_array.astype(np.float64) * float(getattr(d, "RescaleSlope", 1)) + float(
            getattr(d, "RescaleIntercept", 0)
        )
        groups.setdefault(iop, []).append(
            (int(d.InstanceNumber), np.array(d.ImagePositionPatient, dtype=np.float64),
             [float(v) for v in d.PixelSpacing], img)
        )
    stacks = []
    for iop, sl in groups.items():
        r = np.array(iop[:3])
        c = np.array(iop[3:])
        n = np.cross(r, c)
        sl.sort(key=lambda s: (float(np.dot(s[1], n)), s[0]))
        vol = np.stack([s[3] for s in sl]).astype(np.float32)
        lo, hi = np.percentile(vol.astype(np.float64), [0.5, 99.5])
        vol = np.clip((vol - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(vol)
        stacks.append({
            "instances": [s[0] for s in sl], "ipp": [s[1] for s in sl], "r": r, "c": c,
            "spacing": sl[0][2], "vol": vol,
        })
    return stacks


def crop(st, k, x, y):
    ps_row, ps_col = st["spacing"]
    dx, dy = MM / ps_col, MM / ps_row
    rr, cc = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    ys = y + (rr - (H - 1) / 2) * dy
    xs = x + (cc - (W - 1) / 2) * dx
    out = np.zeros((S, H, W))
    for s in range(S):
        ks = k + s - (S - 1) // 2
        if 0 <= ks < st["vol"].shape[0]:
            out[s] = map_coordinates(st["vol"][ks].astype(np.float64), [ys, xs], order=1,
                                     mode="grid-constant", cval=0.0)
    return out


def main():
    root = sys.argv[1]
    t0 = time.perf_counter()
    points = {}
    with open(os.path.join(root, "train_label_coordinates.csv"), newline="") as f:
        for row in csv.DictReader(f):
            points.setdefault(row["study_id"], []).append(row)
    n, total = 0, 0.0
    studies = sorted(os.listdir(os.path.join(root, "train_images")))
    for study in studies:
        cache = {}
        for p in points.get(study, []):
            folder = os.path.join(root, "train_images", study, p["series_id"])
            if not os.path.isdir(folder):
                continue
            if p["series_id"] not in cache:
                cache[p["series_id"]] = load_series(folder)
            inst = int(float(p["instance_number"]))
            for st in cache[p["series_id"]]:
                if inst in st["instances"]:
                    k = st["instances"].index(inst)
                    c = crop(st, k, float(p["x"]), float(p["y"]))
                    total += float(c.sum())
                    n += 1
                    break
    secs = time.perf_counter() - t0
    print(json.dumps({"studies": len(studies), "crops": n, "seconds": round(secs, 4),
                      "crops_per_second": round(n / secs, 1), "sum": round(total, 3)}))


if __name__ == "__main__":
    main()

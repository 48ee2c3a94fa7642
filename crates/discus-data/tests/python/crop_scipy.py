"""Independent crops for discus's standardise tests: numpy linear algebra for the geometry and
scipy.ndimage.map_coordinates(order=1) for the in-plane bilinear sampling.

Input JSON: {"rows", "columns", "ipp": [[x,y,z] per slice in stack order], "iop": [6], "spacing":
[row, col], "data": path of little-endian float32 [slice][row][col], "cases": [{"point": [x,y,z],
"slices", "step", "rows", "columns", "spacing_mm", "padding": "zero"|"edge", "mirror"}],
"percentiles": [q...]}. Output JSON: {"crops": [[values]], "percentiles": [values]}.
"""
import json
import sys

import numpy as np
from scipy.ndimage import map_coordinates

cfg = json.load(open(sys.argv[1]))
vol = np.fromfile(cfg["data"], dtype="<f4").reshape(len(cfg["ipp"]), cfg["rows"], cfg["columns"])
ipp = np.array(cfg["ipp"], dtype=np.float64)
iop = np.array(cfg["iop"], dtype=np.float64)
r = iop[:3] / np.linalg.norm(iop[:3])
c = iop[3:] - r * np.dot(r, iop[3:])
c = c / np.linalg.norm(c)
ps_row, ps_col = cfg["spacing"]
# Uniform stack: p = ipp0 + x*ps_col*r + y*ps_row*c + k*(ipp1 - ipp0)
step = ipp[1] - ipp[0]
A = np.stack([r * ps_col, c * ps_row, step], axis=1)

out = []
for case in cfg["cases"]:
    x, y, k = np.linalg.solve(A, np.array(case["point"]) - ipp[0])
    k0 = int(np.floor(k + 0.5))
    S, H, W = case["slices"], case["rows"], case["columns"]
    dx, dy = case["spacing_mm"] / ps_col, case["spacing_mm"] / ps_row
    rr, cc = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    ys = y + (rr - (H - 1) / 2) * dy
    xs = x + (cc - (W - 1) / 2) * dx
    mode = "grid-constant" if case["padding"] == "zero" else "nearest"
    crop = np.zeros((S, H, W), dtype=np.float64)
    for s in range(S):
        ks = k0 + int(round((s - (S - 1) / 2) * case["step"]))
        if ks < 0 or ks >= vol.shape[0]:
            if case["padding"] == "zero":
                continue
            ks = min(max(ks, 0), vol.shape[0] - 1)
        crop[s] = map_coordinates(vol[ks].astype(np.float64), [ys, xs], order=1, mode=mode, cval=0.0)
    if case["mirror"]:
        crop = crop[:, :, ::-1]
    out.append(crop.ravel().tolist())

pct = [float(np.percentile(vol.astype(np.float64), q)) for q in cfg["percentiles"]]
json.dump({"crops": out, "percentiles": pct}, sys.stdout)

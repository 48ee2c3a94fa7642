"""The intensity window (numpy's default linear percentiles) of stacks given as stored values and a
rescale per slice, for tests/standardise_scipy.rs. Input: a JSON file
{"percentiles": [lo, hi], "stacks": [[{"stored": [...], "slope": s, "intercept": i}, ...], ...]}.
Each slice is rescaled as a DICOM reader does (stored * slope + intercept in float64, stored as
float32, the volume a Kaggle pipeline builds), then the percentiles of the whole stack.
Prints {"windows": [[lo, hi], ...]}."""
import json
import sys

import numpy as np

cfg = json.load(open(sys.argv[1]))
out = []
for stack in cfg["stacks"]:
    vol = np.concatenate([
        (np.array(s["stored"], dtype=np.float64) * s["slope"] + s["intercept"]).astype(np.float32)
        for s in stack
    ])
    lo, hi = np.percentile(vol.astype(np.float64), cfg["percentiles"])
    out.append([float(lo), float(hi)])
print(json.dumps({"windows": out}))

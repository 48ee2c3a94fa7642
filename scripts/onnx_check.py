"""Independent check of discus's ONNX export: onnx.checker and onnxruntime (CPU) from PyPI.

Usage: onnx_check.py CASES.json
CASES.json is a list of {"model": path.onnx, "input": path.f32, "shape": [..]} where the input is
raw little-endian float32. For each case: run onnx.checker.check_model (full check), load the
model in onnxruntime, feed the input, and report the first output. Prints one JSON list of
{"model", "checker", "input_names", "output_shape", "output"} on stdout.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> None:
    cases = json.load(open(sys.argv[1]))
    results = []
    for case in cases:
        model = onnx.load(case["model"])
        onnx.checker.check_model(model, full_check=True)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(
            case["model"], sess_options=opts, providers=["CPUExecutionProvider"]
        )
        inputs = sess.get_inputs()
        if len(inputs) != 1:
            raise SystemExit(f"{case['model']}: {len(inputs)} inputs, expected 1")
        x = np.fromfile(case["input"], dtype="<f4").reshape(case["shape"])
        (y,) = sess.run(None, {inputs[0].name: x})[:1]
        results.append(
            {
                "model": case["model"],
                "checker": "ok",
                "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                "input_names": [i.name for i in inputs],
                "input_dims": [str(d) for d in inputs[0].shape],
                "output_shape": list(y.shape),
                "output": y.astype(np.float64).ravel().tolist(),
            }
        )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()

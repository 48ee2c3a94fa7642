#!/usr/bin/env bash
# Training and inference images/s of discus-model's default grader and localiser: discus (burn
# flex, release build, one replica and data parallel across the cores; for inference also the
# fused CPU kernels `discus predict` runs on the cpu device, discus_model::fused) against PyTorch
# (CPU wheel, same architectures, same losses, same batches; bench/torch_speed.py), both on 2
# threads. "ratio (cpu)" is the fastest discus column on the default cpu device over PyTorch.
# Rounds alternate discus and PyTorch in one run (the machine may be shared: trust the ratios of
# one run, not absolute figures across runs); the table gives medians over rounds and the load
# average before and after.
# Usage: bench/torch_speed.sh [ROUNDS]   (default 3)
# TCH=1 also runs discus on its libtorch backend (the same model code on PyTorch's C++ kernels;
# discus-model's `tch` feature, built against the virtualenv's PyTorch into target/tch: about
# 10 minutes the first time), as a third column.
# Needs: python3 with pip and network access to PyPI once (torch 2.9.0 with its CUDA wheels, ~4 GB):
# the virtualenv is made by scripts/pyvenv under target/pyvenv/torch-speed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
threads=2
export RAYON_NUM_THREADS=$threads TORCH_THREADS=$threads OMP_NUM_THREADS=$threads
export CARGO_INCREMENTAL=0
cd "$root"
cargo build --release -q -p discus-model --example speed
bin=$root/target/release/examples/speed
py=$(scripts/pyvenv torch-speed "torch==2.9.0" "numpy<3")
tch=${TCH:-0}
if [ "$tch" = 1 ]; then
  # torch-sys finds libtorch through the first `python` on PATH; the binary loads it from there.
  PATH="$(dirname "$py"):$PATH" LIBTORCH_USE_PYTORCH=1 \
    cargo build --release -q -p discus-model --features tch --example speed --target-dir "$root/target/tch"
  torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  tbin=$root/target/tch/release/examples/speed
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $threads threads each"
for r in $(seq "$rounds"); do
  "$bin" 1 | sed 's/^{/{"impl":"discus",/' >> "$work/all.jsonl"
  if [ "$tch" = 1 ]; then
    DISCUS_DEVICE=libtorch LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tbin" 1 \
      | sed 's/^{/{"impl":"discus-libtorch",/' >> "$work/all.jsonl"
  fi
  "$py" bench/torch_speed.py 1 | sed 's/^{/{"impl":"pytorch",/' >> "$work/all.jsonl"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" - "$work/all.jsonl" <<'EOF'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
m = defaultdict(list)
for r in rows:
    m[(r["impl"], r["net"], r["mode"], r["replicas"])].append(r["images_per_second"])
med = {k: statistics.median(v) for k, v in m.items()}
tch = any(r["impl"] == "discus-libtorch" for r in rows)
print(f"{'network':10} {'mode':6} {'PyTorch':>9} {'flex 1 thread':>14} {'flex data-parallel':>19} {'cpu fused':>10} {'ratio (cpu)':>12}"
      + (f" {'libtorch':>9} {'ratio (libtorch)':>16}" if tch else ""))
for net in ("grader", "localiser"):
    for mode in ("train", "infer"):
        pt = med[("pytorch", net, mode, 1)]
        d1 = med[("discus", net, mode, 1)]
        dp = [v for (i, n, mo, rep), v in med.items() if i == "discus" and n == net and mo == mode and rep > 1]
        dpv = dp[0] if dp else None
        fu = med.get(("discus", net, mode + "-fused", 1))
        best = max(d1, dpv or 0, fu or 0)
        line = (f"{net:10} {mode:6} {pt:9.1f} {d1:14.1f} {('%.1f' % dpv) if dpv else '-':>19}"
                f" {('%.1f' % fu) if fu else '-':>10} {best / pt:11.2f}x")
        if tch:
            lt = med[("discus-libtorch", net, mode, 1)]
            line += f" {lt:9.1f} {lt / pt:15.2f}x"
        print(line)
print(f"(images/s, medians of {len(m[('pytorch', 'grader', 'train', 1)])} rounds)")
EOF

#!/usr/bin/env bash
# Crops per second: discus (the Rust example `crops`: decode, normalise, 3 x 32 x 32 crops at 1.5 mm
# around every labelled point) against the pipeline a Kaggle team would write (bench/crops_py.py:
# pydicom + numpy + scipy map_coordinates, the same crops), on one synthetic cohort, both reading
# the same files from a warm page cache. Goal: at least 10x.
# Usage: bench/crops.sh [STUDIES=20] [SEED=3] [MATRIX_SCALE=1]
# DISCUS_PROFILE=dev uses the dev profile (opt-level 2 for discus-data/-model and every dependency).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
studies=${1:-20}
seed=${2:-3}
scale=${3:-1}
profile=${DISCUS_PROFILE:-release}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# DISCUS_BUILT=1 skips the build and uses what target/<profile dir> holds (e.g. after
# `cargo build --workspace --all-targets` for the dev profile).
if [[ -z "${DISCUS_BUILT:-}" ]]; then
  cargo build --profile "$profile" -p discus-model --example crops -p discus-cli \
    --manifest-path "$root/Cargo.toml" >&2
fi
dir=$([[ $profile == dev ]] && echo debug || echo "$profile")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$root/target/$dir/discus" synth --out "$out/cohort" --studies "$studies" --sites 3 --seed "$seed" \
  --readers 1 --matrix-scale "$scale" --json > /dev/null
py=$("$root/scripts/pyvenv" bench-crops pydicom==3.0.2 numpy==1.26.4 scipy==1.13.1)
cat "$out"/cohort/train_images/*/*/* > /dev/null # warm the page cache for both
rust=$("$root/target/$dir/examples/crops" "$out/cohort")
pyres=$("$py" "$root/bench/crops_py.py" "$out/cohort")
echo "discus: $rust"
echo "python: $pyres"
python3 - "$rust" "$pyres" <<'PY'
import json, sys
r, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"crops: discus {r['crops']}, python {p['crops']}; sum of crop values: discus {r['sum']:.3f}, python {p['sum']:.3f} (relative difference {abs(r['sum'] - p['sum']) / max(abs(p['sum']), 1e-9):.2e})")
print(f"crops per second: discus {r['crops_per_second']:.1f}, python {p['crops_per_second']:.1f}: {r['crops_per_second'] / p['crops_per_second']:.1f}x")
PY

#!/usr/bin/env bash
# Benchmark of `discus synth` at the default (realistic) image sizes, release build.
# Usage: bench/synth.sh [STUDIES] [SEED]
# Prints studies/minute and MB/s written (wall clock, this machine, all cores rayon sees).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
studies=${1:-20}
seed=${2:-1}
cargo build --release -p discus-cli --manifest-path "$root/Cargo.toml" >&2
bin="$root/target/release/discus"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s.%N)
"$bin" synth --out "$out/cohort" --studies "$studies" --sites 3 --seed "$seed" --readers 3 --json > "$out/summary.json"
end=$(date +%s.%N)
python3 - "$out/summary.json" "$start" "$end" "$(nproc)" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
secs = float(sys.argv[3]) - float(sys.argv[2])
mb = s["bytes_written"] / 1e6
print(f"studies: {s['studies']}  DICOM files: {s['instances']}  MB written: {mb:.1f}")
print(f"wall: {secs:.1f} s on {sys.argv[4]} cores")
print(f"studies/minute: {s['studies'] / secs * 60:.1f}")
print(f"MB/s written: {mb / secs:.1f}")
print(f"MB per study: {mb / s['studies']:.1f}")
PY

#!/usr/bin/env bash
# Benchmark of synthetic cohort generation at the default (realistic) image sizes.
# Usage: bench/synth.sh [STUDIES] [SEED] [--masks]
# Prints studies/minute and MB/s written (wall clock, this machine, all cores rayon sees).
# Builds discus-synth's `synth` example (the same code path as `discus synth`, without the CLI's
# model stack) in the dev profile, which compiles discus-synth and every dependency at opt-level 2
# (see Cargo.toml); set PROFILE=release for a release build. Built with --workspace (the workspace's
# unified features), so the dependency builds of the other workspace targets are reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
studies=${1:-20}
seed=${2:-1}
extra=${3:-}
profile=${PROFILE:-dev}
if [ "$profile" = dev ]; then
  cargo build --workspace --example synth --manifest-path "$root/Cargo.toml" >&2
else
  cargo build --profile "$profile" --workspace --example synth --manifest-path "$root/Cargo.toml" >&2
fi
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
bin="$root/target/$dir/examples/synth"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s.%N)
"$bin" "$out/cohort" "$studies" 3 "$seed" $extra > "$out/summary.json"
end=$(date +%s.%N)
python3 - "$out/summary.json" "$start" "$end" "$(nproc)" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1]))
secs = float(sys.argv[3]) - float(sys.argv[2])
mb = s["bytes_written"] / 1e6
print(f"studies: {s['studies']}  DICOM files: {s['instances']}  MB written: {mb:.1f}")
print(f"wall: {secs:.1f} s on {sys.argv[4]} cores (load average at the end: {os.getloadavg()[0]:.1f})")
print(f"studies/minute: {s['studies'] / secs * 60:.1f}")
print(f"MB/s written: {mb / secs:.1f}")
print(f"MB per study: {mb / s['studies']:.1f}")
PY

#!/usr/bin/env bash
# Crops per second: discus (the Rust example `crops`: decode, normalise, 3 x 32 x 32 crops at 1.5 mm
# around every labelled point) against the pipeline a Kaggle team would write (bench/crops_py.py:
# pydicom + numpy + scipy map_coordinates, the same crops), on one synthetic cohort, both reading
# the same files from a warm page cache. Goal: at least 10x. The two run alternately ROUNDS times
# (default 3); each round prints wall and CPU (user + sys) seconds and the load average, then the
# median ratio. Fails when the crops differ (count, or the sum of all values beyond 1e-6 relative).
# Usage: [ROUNDS=3] bench/crops.sh [STUDIES=20] [SEED=3] [MATRIX_SCALE=1]
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
"$root/target/$dir/examples/crops" "$out/cohort" > /dev/null # builds the dataset index (not timed)
# Both sides alternately, ROUNDS times (the machine may be shared): wall and CPU seconds of each run.
rounds=${ROUNDS:-3}
for i in $(seq "$rounds"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%U %S' -o "$out/rt" "$root/target/$dir/examples/crops" "$out/cohort" > "$out/r$i"
  /usr/bin/time -f '%U %S' -o "$out/pt" "$py" "$root/bench/crops_py.py" "$out/cohort" > "$out/p$i"
  echo "{\"round\": $i, \"load\": $load, \"discus\": $(cat "$out/r$i"), \"discus_cpu\": \"$(cat "$out/rt")\", \"python\": $(cat "$out/p$i"), \"python_cpu\": \"$(cat "$out/pt")\"}" >> "$out/rounds.jsonl"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out/rounds.jsonl" <<'PY'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
for r in rs:
    d, p = r["discus"], r["python"]
    dc, pc = (sum(map(float, r[k].split())) for k in ("discus_cpu", "python_cpu"))
    print(f"round {r['round']} (load {r['load']}): discus {d['crops_per_second']:.1f} crops/s ({d['seconds']:.2f} s, {dc:.2f} CPU s, {d['threads']} threads), "
          f"python {p['crops_per_second']:.1f} crops/s ({p['seconds']:.2f} s, {pc:.2f} CPU s): {d['crops_per_second'] / p['crops_per_second']:.1f}x wall, {pc / dc:.1f}x CPU")
d, p = rs[-1]["discus"], rs[-1]["python"]
print(f"crops: discus {d['crops']}, python {p['crops']}; sum of crop values: discus {d['sum']:.3f}, python {p['sum']:.3f} (relative difference {abs(d['sum'] - p['sum']) / max(abs(p['sum']), 1e-9):.2e})")
md = statistics.median(r["discus"]["crops_per_second"] for r in rs)
mp = statistics.median(r["python"]["crops_per_second"] for r in rs)
print(f"median crops per second: discus {md:.1f}, python {mp:.1f}: {md / mp:.1f}x")
if d["crops"] != p["crops"] or abs(d["sum"] - p["sum"]) > 1e-6 * max(abs(p["sum"]), 1.0):
    sys.exit("the two pipelines did not cut the same crops")
PY

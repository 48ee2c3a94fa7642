#!/usr/bin/env bash
# Usage: bench/predict.sh [STUDIES]
# Seconds per study of `discus predict` (three series, 25 findings per study) and peak RSS, in four
# modes: no pages (the bare prediction), default (findings pages with slice thumbnails), --explain
# (heat maps and occlusion maps), --explain --stability 8. The machine's load average is printed
# with the figures (the machine may be shared).
#
# The binary is target/release/discus (built if missing) unless DISCUS_BIN names another one. The
# cohort is full-size synthetic data (seed 4242, 2 sites); the model has the default architecture
# and is trained for one epoch (speed does not depend on the weights). Work files go to
# target/bench/predict (BENCH_DIR to change). Each mode runs once after a warm-up run that builds
# the dataset index and fills the page cache.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10}
bin=${DISCUS_BIN:-$root/target/release/discus}
work=${BENCH_DIR:-$root/target/bench/predict}
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release -p discus-cli)
fi
mkdir -p "$work"
cohort=$work/cohort-$n
if [ ! -f "$cohort/train.csv" ]; then
  "$bin" synth --out "$cohort" --studies "$n" --sites 2 --seed 4242 --readers 1 >/dev/null
fi
model=$work/model
if [ ! -f "$model/model.toml" ]; then
  "$bin" train --dataset "$cohort" --epochs 1 --seed 1 --out "$model" >/dev/null
fi
"$bin" predict --model "$model" "$cohort" --out "$work/warm" --no-pages >/dev/null

echo "discus predict, $n studies, $(nproc) logical cores, binary $bin"
printf '%-28s %12s %14s %12s\n' mode "s/study" "peak RSS MiB" "load avg"
for mode in "--no-pages" "" "--explain" "--explain --stability 8"; do
  out=$work/out
  rm -rf "$out"
  load=$(cut -d' ' -f1 /proc/loadavg)
  # shellcheck disable=SC2086
  /usr/bin/time -v "$bin" predict --model "$model" "$cohort" --out "$out" $mode \
    >"$work/stdout.txt" 2>"$work/time.txt"
  per=$(grep -o '([0-9.]* s per study)' "$work/stdout.txt" | grep -o '[0-9.]*' | head -1)
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/time.txt")
  printf '%-28s %12s %14s %12s\n' "${mode:-(default: pages)}" "$per" "$rss" "$load"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# Header-scan benchmark: `discus validate` (release build) against a pydicom reference
# (dcmread(stop_before_pixels=True) over the same files) on LumbarDISC-layout datasets of
# 512 x 512 16-bit MR slices.
#
# Usage: bench/header_scan.sh [N_FILES ...]        (default: 2400 9600)
# Env:   BENCH_DIR (default target/bench) holds the generated datasets; they are reused.
#
# For each size it reports files/s for discus with a fresh index ("cold"), discus again with the
# index in place ("warm": unchanged files are not re-read), and pydicom; the ratio; and the peak
# RSS of each (GNU time -v). All runs read from the page cache (the files are read once before
# timing, by an untimed run of each tool), so the figures compare parsing work, not the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(2400 9600)
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"

# pydicom 3.0.2: the version the shared test data's facts were measured with.
py=$(scripts/pyvenv bench-pydicom pydicom==3.0.2)
cargo build --release -p discus-cli --quiet
bin=target/release/discus

# Runs a command under GNU time; prints "<wall seconds> <max RSS KiB> <user+system CPU seconds>".
measure() {
  local log=$work/time.log
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$log" "$@" > "$work/out.txt" 2> "$work/err.txt" || true
  t1=$(date +%s.%N)
  local rss cpu
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$log")
  echo "$(echo "$t1 - $t0" | bc -l) $rss $cpu"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Wall clock (files/s) and CPU time (user + system, microseconds per file):"
echo
echo "| files | discus cold files/s | discus warm files/s | pydicom files/s | cold / pydicom | warm / pydicom | CPU us/file discus cold / warm / pydicom | CPU ratio pydicom / discus cold | peak RSS discus cold / warm / pydicom (MiB) |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  root=$work/ds_$n
  if [ ! -f "$root/.complete" ]; then
    rm -rf "$root"
    "$py" bench/make_dataset.py "$root" "$n"
    touch "$root/.complete"
  fi
  files=$(find "$root/train_images" -name '*.dcm' | wc -l)
  # Warm the page cache for every run alike: an untimed scan (with a throwaway index) touches the
  # header pages both tools read (reading all 0.5 MiB of every file could evict them again).
  rm -rf "$root/.discus" "$work/warmup-index.sqlite"*
  "$bin" validate "$root" --json --index "$work/warmup-index.sqlite" > /dev/null || true
  "$py" bench/pydicom_scan.py "$root" > /dev/null
  rm -rf "$root/.discus" "$work/warmup-index.sqlite"*
  read -r cold_s cold_rss cold_cpu < <(measure "$bin" validate "$root" --json)
  read -r warm_s warm_rss warm_cpu < <(measure "$bin" validate "$root" --json)
  read -r py_s py_rss py_cpu < <(measure "$py" bench/pydicom_scan.py "$root")
  python3 - "$files" "$cold_s" "$warm_s" "$py_s" "$cold_rss" "$warm_rss" "$py_rss" "$cold_cpu" "$warm_cpu" "$py_cpu" <<'PY'
import sys
n, cold, warm, pyd = int(sys.argv[1]), *map(float, sys.argv[2:5])
rc, rw, rp = (int(v) / 1024 for v in sys.argv[5:8])
cc, cw, cp = (float(v) * 1e6 / n for v in sys.argv[8:11])
fc, fw, fp = n / cold, n / warm, n / pyd
print(f"| {n} | {fc:,.0f} | {fw:,.0f} | {fp:,.0f} | {fc / fp:.1f}x | {fw / fp:.1f}x "
      f"| {cc:.0f} / {cw:.0f} / {cp:.0f} | {cp / cc:.1f}x | {rc:.0f} / {rw:.0f} / {rp:.0f} |")
PY
done

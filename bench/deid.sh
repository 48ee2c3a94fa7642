#!/usr/bin/env bash
# De-identification benchmark: `discus deid` (release build) on folders of 512 x 512 16-bit MR
# slices (~0.5 MiB each, written by bench/make_dataset.py), with the Retain Longitudinal Temporal
# Information with Modified Dates option (the heaviest: every date parsed and shifted).
#
# Usage: bench/deid.sh [N_FILES ...]        (default: 2400 9600, the sizes header_scan.sh generates)
# Env:   BENCH_DIR (default target/bench) holds the generated inputs (shared with header_scan.sh).
#
# For each size it reports files/s of a fresh run (every file read, de-identified, written
# atomically with fsync), of a resumed run (every file already done), and of `deid verify`; and
# the peak RSS of each (GNU time -v): flat RSS across sizes means memory does not grow with the
# number of files. Inputs are read once before timing, so they come from the page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(2400 9600)
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"

# pydicom 3.0.2 only writes the synthetic inputs (the version the shared data was measured with).
py=$(scripts/pyvenv bench-pydicom pydicom==3.0.2)
cargo build --release -p discus-cli --quiet
bin=target/release/discus

# Runs a command under GNU time; prints "<wall seconds> <max RSS KiB> <exit status>".
measure() {
  local log=$work/time.log rc=0 t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$log" "$@" > "$work/out.txt" 2> "$work/err.txt" || rc=$?
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(awk -F': ' '/Maximum resident set size/ {print $2}' "$log") $rc"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| files | deid files/s | deid peak RSS (MiB) | resumed files/s | verify files/s | verify peak RSS (MiB) | verify exit |"
echo "|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  root=$work/ds_$n
  if [ ! -f "$root/.complete" ]; then
    rm -rf "$root"
    "$py" bench/make_dataset.py "$root" "$n"
    touch "$root/.complete"
  fi
  in=$root/train_images
  files=$(find "$in" -name '*.dcm' | wc -l)
  find "$in" -name '*.dcm' -print0 | xargs -0 cat > /dev/null
  out=$work/deid_out_$n
  rm -rf "$out" "$out.deid-map.csv"
  read -r d_s d_rss d_rc < <(measure "$bin" deid "$in" "$out" --retain-longitudinal-modified-dates --key "$work/deid.key" --json)
  [ "$d_rc" = 0 ] || { echo "deid failed ($d_rc):"; tail -5 "$work/err.txt"; exit 1; }
  read -r r_s _ _ < <(measure "$bin" deid "$in" "$out" --retain-longitudinal-modified-dates --key "$work/deid.key" --json)
  read -r v_s v_rss v_rc < <(measure "$bin" deid verify "$out" --against "$in")
  python3 - "$files" "$d_s" "$d_rss" "$r_s" "$v_s" "$v_rss" "$v_rc" <<'PY'
import sys
n = int(sys.argv[1]); d, r, v = float(sys.argv[2]), float(sys.argv[4]), float(sys.argv[5])
print(f"| {n} | {n / d:,.0f} | {int(sys.argv[3]) / 1024:.0f} | {n / r:,.0f} | {n / v:,.0f} | {int(sys.argv[6]) / 1024:.0f} | {sys.argv[7]} |")
PY
done

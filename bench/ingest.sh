#!/usr/bin/env bash
# Ingest benchmark: `discus ingest` (release build) on a PACS-style export of 512 x 512 16-bit MR
# slices (~0.5 MiB each, written by bench/make_dataset.py, then hard-linked under random names into
# 8 shuffled folders with every study mixed).
#
# Usage: bench/ingest.sh [N_FILES ...]        (default: 2400)
# Env:   BENCH_DIR (default target/bench) holds the generated inputs (shared with header_scan.sh).
#
# For each size it reports files/s of a fresh ingest (every file read twice: headers and
# completeness, then copied with an atomic, fsynced write), of a resumed run (every output already
# there and identical: read and compared, nothing written), and of a fresh ingest with --deid
# (every file de-identified on the way in); and the peak RSS of each (GNU time -v). Inputs are read
# once before timing, so they come from the page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(2400)
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"

py=$(scripts/pyvenv bench-pydicom pydicom==3.0.2)
cargo build --release -p discus-cli --quiet
bin=target/release/discus

# Runs a command under GNU time; prints "<wall seconds> <max RSS KiB> <exit status>".
measure() {
  local log=$work/time.log rc=0 t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$log" "$@" > "$work/out.json" 2> "$work/err.txt" || rc=$?
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(awk -F': ' '/Maximum resident set size/ {print $2}' "$log") $rc"
}
# The `written` + `unchanged` count of the last run's JSON report.
count() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["written"]+r["unchanged"])' "$work/out.json"; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| files | ingest files/s | peak RSS (MiB) | resumed files/s | ingest --deid files/s | --deid peak RSS (MiB) |"
echo "|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  root=$work/ds_$n
  if [ ! -f "$root/.complete" ]; then
    rm -rf "$root"
    "$py" bench/make_dataset.py "$root" "$n"
    touch "$root/.complete"
  fi
  export_dir=$work/pacs_export_$n
  if [ ! -f "$export_dir.complete" ]; then
    rm -rf "$export_dir"
    # random names (no extension), 8 folders, studies mixed: a PACS export's shape
    python3 - "$root/train_images" "$export_dir" <<'PY'
import hashlib, os, sys
src, dst = sys.argv[1], sys.argv[2]
for d, _, files in os.walk(src):
    for f in files:
        p = os.path.join(d, f)
        h = hashlib.sha1(p.encode()).hexdigest()
        folder = os.path.join(dst, f"DIR{int(h[:2], 16) % 8:03d}")
        os.makedirs(folder, exist_ok=True)
        os.link(p, os.path.join(folder, h[2:14].upper()))
PY
    touch "$export_dir.complete"
  fi
  files=$(find "$export_dir" -type f | wc -l)
  find "$export_dir" -type f -print0 | xargs -0 cat > /dev/null
  out=$work/ingest_out_$n
  rm -rf "$out" "$out.ingest-map.csv" "$out.deid" "$work/ingest.key"*
  read -r i_s i_rss i_rc < <(measure "$bin" ingest "$export_dir" --out "$out" --json)
  [ "$i_rc" = 0 ] || { echo "ingest failed ($i_rc):"; tail -5 "$work/err.txt"; exit 1; }
  got=$(count); [ "$got" = "$files" ] || { echo "ingested $got of $files images"; exit 1; }
  read -r r_s _ r_rc < <(measure "$bin" ingest "$export_dir" --out "$out" --json)
  [ "$r_rc" = 0 ] || { echo "resume failed ($r_rc)"; exit 1; }
  read -r d_s d_rss d_rc < <(measure "$bin" ingest "$export_dir" --out "$out.deid" --deid --key "$work/ingest.key" --json)
  [ "$d_rc" = 0 ] || { echo "ingest --deid failed ($d_rc):"; tail -5 "$work/err.txt"; exit 1; }
  rm -rf "$out" "$out.deid"
  python3 - "$files" "$i_s" "$i_rss" "$r_s" "$d_s" "$d_rss" <<'PY'
import sys
n = int(sys.argv[1])
i, r, d = float(sys.argv[2]), float(sys.argv[4]), float(sys.argv[5])
print(f"| {n} | {n / i:,.0f} | {int(sys.argv[3]) / 1024:.0f} | {n / r:,.0f} | {n / d:,.0f} | {int(sys.argv[6]) / 1024:.0f} |")
PY
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

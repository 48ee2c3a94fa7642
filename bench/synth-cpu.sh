#!/usr/bin/env bash
# CPU time per synthetic study of two `synth` example binaries, alternating runs (a shared machine's
# wall time is noisy; user + system time much less so).
# Usage: bench/synth-cpu.sh BASE_BIN NEW_BIN [STUDIES] [ROUNDS] [SEED]
# Each round runs BASE then NEW on the same cohort configuration (STUDIES studies, 3 sites, SEED,
# default sizes) under /usr/bin/time -v and prints user+sys seconds per study for each run, then the
# medians and their ratio NEW / BASE.
set -euo pipefail
base=$1
new=$2
studies=${3:-6}
rounds=${4:-3}
seed=${5:-1}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {
  rm -rf "$out/cohort"
  /usr/bin/time -v "$1" "$out/cohort" "$studies" 3 "$seed" > /dev/null 2> "$out/time"
  python3 - "$out/time" "$studies" <<'PY'
import sys
t = {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().partition(": ")
    t[k] = v
cpu = float(t["User time (seconds)"]) + float(t["System time (seconds)"])
print(f"{cpu / int(sys.argv[2]):.3f}")
PY
}
b=()
n=()
for r in $(seq 1 "$rounds"); do
  b+=("$(run "$base")")
  n+=("$(run "$new")")
  echo "round $r: base ${b[-1]} s/study, new ${n[-1]} s/study (load $(cut -d' ' -f1 /proc/loadavg))"
done
python3 - "${b[*]}" "${n[*]}" <<'PY'
import statistics, sys
b = [float(v) for v in sys.argv[1].split()]
n = [float(v) for v in sys.argv[2].split()]
mb, mn = statistics.median(b), statistics.median(n)
print(f"median CPU s/study: base {mb:.3f}, new {mn:.3f}, new/base {mn / mb:.3f}")
PY

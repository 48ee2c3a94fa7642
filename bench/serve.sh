#!/usr/bin/env bash
# Usage: bench/serve.sh [STUDIES] [MATRIX_SCALE]
# End-to-end figures of `discus serve` with a PACS in the loop: DCMTK's storescu sends STUDIES
# synthetic studies (default 20, matrix scale default 1 = realistic sizes) one after the other,
# as fast as it can, to Orthanc; Orthanc's Lua OnStableStudy (StableAge 1 s) routes each stable
# study to discus by C-STORE; discus (stable_age_s 1) runs the model and sends its SR back to
# Orthanc by C-STORE. Measured: studies per minute (first instance sent to last SR in Orthanc),
# and per study the latency from its last instance sent (storescu's end) to its SR being found by
# QIDO-RS in Orthanc (median, p90, max; polled every 0.2 s). SERIAL=1 sends the next study only
# once the previous one's SR is in (latency without a queue; the studies per minute then include
# the waits). Without Orthanc installed, storescu
# sends straight to discus and the SR goes to DCMTK's storescp (the "SR in the PACS" time is then
# the file's arrival there). The load average is printed with the figures (the machine may be shared).
#
# The binary is target/release/discus (built if missing) unless DISCUS_BIN names another one. The
# model has the default architecture, trained one epoch on the cohort (speed does not depend on
# the weights). Work files go to target/bench/serve (BENCH_DIR to change).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-20}
scale=${2:-1}
bin=${DISCUS_BIN:-$root/target/release/discus}
work=${BENCH_DIR:-$root/target/bench/serve}
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release -p discus-cli)
fi
for t in storescu storescp curl; do
  command -v $t >/dev/null || { echo "bench/serve.sh needs $t" >&2; exit 2; }
done
mkdir -p "$work"
cohort=$work/cohort-$n-$scale
if [ ! -f "$cohort/train.csv" ]; then
  "$bin" synth --out "$cohort" --studies "$n" --sites 2 --seed 4343 --readers 1 \
    --matrix-scale "$scale" >/dev/null
fi
model=$work/model-$scale
if [ ! -f "$model/model.toml" ]; then
  "$bin" train --dataset "$cohort" --epochs 1 --seed 1 --out "$model" >/dev/null
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
run=$work/run
rm -rf "$run"
mkdir -p "$run"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

orthanc=/usr/sbin/Orthanc
plugin=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
pacs_dicom=$(free_port)
if [ -x "$orthanc" ] && [ -f "$plugin" ]; then
  mode=orthanc
  pacs_http=$(free_port)
  pacs_ae=ORTHANC
  allowed='["ORTHANC"]'
else
  mode=storescp
  pacs_ae=PACS
  allowed='["BENCH"]'
  mkdir -p "$run/pacs"
fi
cat >"$run/serve.toml" <<EOF
data_dir = "$run/data"
model = "$model"
[http]
bind = "127.0.0.1:0"
[dicom]
bind = "127.0.0.1:0"
ae_title = "DISCUS"
allowed_ae_titles = $allowed
[trigger]
stable_age_s = 1
poll_ms = 100
[[destinations]]
kind = "c-store"
address = "127.0.0.1:$pacs_dicom"
ae_title = "$pacs_ae"
EOF
"$bin" serve --config "$run/serve.toml" >"$run/serve.out" 2>"$run/serve.err" &
pids+=($!)
for _ in $(seq 600); do grep -q '^dicom ' "$run/serve.out" 2>/dev/null && break; sleep 0.1; done
discus_port=$(sed -n 's/^dicom .*:\([0-9]*\)$/\1/p' "$run/serve.out")
[ -n "$discus_port" ] || { cat "$run/serve.err" >&2; exit 1; }

if [ $mode = orthanc ]; then
  cat >"$run/route.lua" <<'EOF'
function OnStableStudy(studyId, tags, metadata)
  RestApiPost('/modalities/discus/store', '{"Resources": ["' .. studyId .. '"], "Synchronous": false}')
end
EOF
  cat >"$run/orthanc.json" <<EOF
{ "Name": "discus-bench", "StorageDirectory": "$run/orthanc/storage", "IndexDirectory": "$run/orthanc/index",
  "HttpPort": $pacs_http, "DicomPort": $pacs_dicom, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false, "Plugins": ["$plugin"], "DicomWeb": {"Enable": true, "Root": "/dicom-web/"},
  "DicomModalities": {"discus": ["DISCUS", "127.0.0.1", $discus_port]}, "StableAge": 1,
  "LuaScripts": ["$run/route.lua"], "StorageCompression": false, "SaveJobs": false }
EOF
  "$orthanc" "$run/orthanc.json" >"$run/orthanc.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$pacs_http/system" >/dev/null && break; sleep 0.2; done
  send_port=$pacs_dicom; send_ae=ORTHANC
else
  storescp -aet PACS --output-directory "$run/pacs" "$pacs_dicom" &
  pids+=($!)
  send_port=$discus_port; send_ae=DISCUS
fi

layout_images=$cohort/train_images
# (the cohort layout of discus synth; the study folder names are the Study Instance UIDs)
studies=$(ls "$layout_images")
now() { date +%s.%N; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(now)
: >"$run/sent.txt"
: >"$run/arrived.txt"
# has_sr STUDY: true once the study's SR is in the PACS (recorded in arrived.txt).
has_sr() {
  grep -q "^$1 " "$run/arrived.txt" && return 0
  if [ $mode = orthanc ]; then
    got=$(curl -sf "http://127.0.0.1:$pacs_http/dicom-web/studies/$1/series?Modality=SR" || true)
    if [ -n "$got" ] && [ "$got" != "[]" ]; then echo "$1 $(now)" >>"$run/arrived.txt"; return 0; fi
  else
    for f in "$run/pacs"/*; do
      [ -f "$f" ] || continue
      u=$(dcmdump +P 0020,000d "$f" | sed 's/.*\[\(.*\)\].*/\1/')
      [ -f "$run/seen-$u" ] || { touch "$run/seen-$u"; echo "$u $(now)" >>"$run/arrived.txt"; }
    done
    grep -q "^$1 " "$run/arrived.txt" && return 0
  fi
  return 1
}
deadline=$(echo "$(now) + 60 + 30 * $n" | bc)
wait_all() {
  local pending=$*
  while [ -n "$pending" ]; do
    local left=""
    for s in $pending; do has_sr "$s" || left="$left $s"; done
    pending=$left
    if [ "$(echo "$(now) > $deadline" | bc)" = 1 ]; then
      echo "timed out; still waiting for:$pending" >&2
      exit 1
    fi
    [ -n "$pending" ] && sleep 0.2
  done
  return 0
}
for s in $studies; do
  storescu -aet BENCH -aec "$send_ae" +sd +r 127.0.0.1 "$send_port" "$layout_images/$s" >/dev/null
  echo "$s $(now)" >>"$run/sent.txt"
  # SERIAL=1: one study at a time (the latency without a queue).
  if [ "${SERIAL:-0}" = 1 ]; then wait_all "$s"; fi
done
t_sent=$(now)
wait_all $studies
t_end=$(now)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
files=$(find "$layout_images" -type f | wc -l)
mb=$(du -sm "$layout_images" | cut -f1)
join <(sort "$run/sent.txt") <(sort "$run/arrived.txt") | awk '{printf "%.3f\n", $3 - $2}' | sort -n >"$run/latency.txt"
pct() { awk -v p="$1" '{a[NR]=$1} END {i=int((NR-1)*p+0.5)+1; print a[i]}' "$run/latency.txt"; }
echo "discus serve, $n studies${SERIAL:+ (SERIAL=$SERIAL)} ($files files, $mb MB, matrix scale $scale), PACS: $mode, $(nproc) logical cores, binary $bin"
echo "load average before: $load_before; after: $load_after"
printf 'sending took %.1f s; last SR in the PACS %.1f s after the first instance\n' \
  "$(echo "$t_sent - $t0" | bc)" "$(echo "$t_end - $t0" | bc)"
printf 'studies per minute end to end: %.1f\n' "$(echo "$n * 60 / ($t_end - $t0)" | bc -l)"
echo "last instance sent -> SR in the PACS, s: median $(pct 0.5), p90 $(pct 0.9), max $(pct 1.0) (stable ages: Orthanc 1 s + discus 1 s)"

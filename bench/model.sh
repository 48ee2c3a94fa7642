#!/usr/bin/env bash
# The model benchmark (a documented command, not a test): synthesise a 5-site cohort from a seed
# never used in development, train on 4 sites, predict and judge held-out studies of those sites,
# then the site shift: the 5th (unseen) site before and after fine-tuning (--init) on some of its
# studies.
#
# Usage: bench/model.sh [N_TRAIN=600] [N_HELD=200] [N_TUNE=50] [N_SHIFT=100] [EPOCHS=10]
#                       [SEED=20261130] [MATRIX_SCALE=1] [OUT=mktemp]
#                       (env: GRADER_EPOCHS, GRADER_HEAD, FRESH_GRADERS, LOCALISERS_ONLY,
#                        SECOND_GRADERS, DISCUS_BIN)
# The full run is hours of CPU on 2 cores; e.g. `bench/model.sh 60 20 10 20 4` is a reduced run.
# DISCUS_BIN=target/tch/release/discus DISCUS_DEVICE=libtorch trains and predicts on libtorch (a
# `--features tch` build, README "Backends"): a graders set trains 2.2 times as fast there.
#
# Prints, for the held-out studies and the shifted site before/after fine-tuning: the score
# (`discus score`), the optimal prior's score (`discus baseline prior --kind optimal` fitted on the
# training labels), the cohort's Bayes limit (as `discus synth` prints it) and the Bayes-optimal
# submission's score on the same studies (`discus baseline bayes`), the median localisation
# error in mm per condition against the true structure centres of truth.json, AUC for Severe and
# ECE (bench/model_eval.py), each group's loss split by the predicted slice's offset from the
# labelled one (bench/model_slices.py), and the train / predict wall times.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n_train=${1:-600}
n_held=${2:-200}
n_tune=${3:-50}
n_shift=${4:-100}
epochs=${5:-10}
seed=${6:-20261130}
scale=${7:-1}
out=${8:-$(mktemp -d)}
mkdir -p "$out"
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# DISCUS_BIN=path/to/discus skips the release build (the dev profile builds discus-model,
# discus-data, discus-synth and every dependency at opt-level 2, so target/debug/discus is close).
if [[ -n "${DISCUS_BIN:-}" ]]; then
  bin=$DISCUS_BIN
else
  cargo build --release -p discus-cli --manifest-path "$root/Cargo.toml" >&2
  bin="$root/target/release/discus"
fi

# Studies are assigned to sites round-robin: enough for both the 4 training sites and the 5th.
per_site=$(( (n_train + n_held + 3) / 4 ))
(( n_tune + n_shift > per_site )) && per_site=$(( n_tune + n_shift ))
total=$(( 5 * per_site ))
# A cohort already there (synth.json written when `discus synth` finished) is kept.
if [[ ! -s "$out/synth.json" ]]; then
  echo "== synthesising $total studies, 5 sites, seed $seed (matrix scale $scale) -> $out/cohort" >&2
  "$bin" synth --out "$out/cohort" --studies "$total" --sites 5 --seed "$seed" --readers 1 \
    --matrix-scale "$scale" --json > "$out/synth.json.part"
  mv "$out/synth.json.part" "$out/synth.json"
fi
[[ -s "$out/sets.json" ]] ||
  python3 "$root/bench/model_subset.py" "$out/cohort" "$out/sets" 4 \
    "$n_train" "$n_held" "$n_tune" "$n_shift" > "$out/sets.json"
cat "$out/sets.json" >&2

t0=$(date +%s.%N)
timed() { # LABEL COMMAND...: wall, CPU and peak RSS of a step into $out/time_LABEL.txt
  local label=$1
  shift
  /usr/bin/time -f '%e s wall, %U s user, %S s sys, peak RSS %M KB' -o "$out/time_$label.txt" "$@"
}
# GRADER_EPOCHS=N (default 0: none): then N epochs of the graders alone on the cached crops
# (`--graders-only`, Adam 1e-3 with a cosine decay, 4 studies per step), into model_g; the
# fine-tuning and every judgment then start from model_g (the fine-tuned model is tuned_g).
grader_epochs=${GRADER_EPOCHS:-0}
# When those graders start afresh (FRESH_GRADERS, below), the first stage trains the localisers
# only (`--localisers-only`): its graders would be thrown away, and each network's gradient comes
# from its own loss alone, so leaving them out changes none of the localisers' updates.
# LOCALISERS_ONLY=0 trains every network in the first stage anyway.
first_args=()
if (( grader_epochs > 0 )) && [[ "${FRESH_GRADERS:-1}" == 1 && "${LOCALISERS_ONLY:-1}" == 1 ]]; then
  first_args=(--localisers-only)
fi
# A model folder already there (an interrupted run of this script) is kept, not retrained.
[[ -f "$out/model/model.toml" ]] ||
  timed train "$bin" train --dataset "$out/sets/train" --folds 5 --epochs "$epochs" \
    --cache "$out/cache_train" "${first_args[@]}" --out "$out/model" >&2
# GRADER_HEAD=ordinal|softmax: the head of those graders (`--grader-head`; another head than the
# first model's starts them afresh on its localisers). Default: the model's.
head_args=()
[[ -n "${GRADER_HEAD:-}" ]] && head_args=(--grader-head "$GRADER_HEAD")
# FRESH_GRADERS=1 (the default): those graders start afresh on the model's localisers
# (`--fresh-graders`): graders left by the joint run learn more slowly than new ones (README,
# "Benchmark on seed 20261203"). FRESH_GRADERS=0 continues from the joint run's graders.
[[ "${FRESH_GRADERS:-1}" == 1 ]] && head_args+=(--fresh-graders)
model="$out/model"
tuned="$out/tuned"
if (( grader_epochs > 0 )); then
  [[ -f "$out/model_g/model.toml" ]] ||
    timed graders "$bin" train --dataset "$out/sets/train" --init "$out/model" --graders-only \
      --epochs "$grader_epochs" --batch 4 --lr 1e-3 --folds 5 --cache "$out/cache_train" \
      "${head_args[@]}" --out "$out/model_g" >&2
  model="$out/model_g"
  tuned="$out/tuned_g"
fi
# SECOND_GRADERS=N (default 0: none; needs GRADER_EPOCHS): N epochs of a second set of fresh
# graders (seed 2, holding out fold 1 of 5 instead of 0, so that together the two sets have seen
# every training study), into model_g2; the held-out and shifted studies are then judged again by
# the ensemble of model_g and model_g2 (`discus predict --model A --model B`: mean probabilities).
second_epochs=${SECOND_GRADERS:-0}
if (( second_epochs > 0 && grader_epochs > 0 )); then
  [[ -f "$out/model_g2/model.toml" ]] ||
    timed graders2 "$bin" train --dataset "$out/sets/train" --init "$out/model" --graders-only \
      --epochs "$second_epochs" --batch 4 --lr 1e-3 --folds 5 --held-fold 1 --seed 2 \
      --cache "$out/cache_train" "${head_args[@]}" --out "$out/model_g2" >&2
fi
t1=$(date +%s.%N)
# Fine-tuning: every network, the default --init rate (a tenth of a fresh model's), no held-out
# fold (the model keeps its temperatures).
[[ -f "$tuned/model.toml" ]] ||
  timed tune "$bin" train --dataset "$out/sets/tune" --init "$model" --epochs "$epochs" \
    --out "$tuned" >&2
t2=$(date +%s.%N)

judge() { # NAME SET MODEL [MODEL...] (several models: an ensemble)
  local name=$1 set=$2
  shift 2
  local models=() m s0 s1
  for m in "$@"; do models+=(--model "$m"); done
  s0=$(date +%s.%N)
  # No findings pages: they take about 10 MB per study (bench/predict.sh times them).
  "$bin" predict "${models[@]}" "$out/sets/$set" --out "$out/pred_$name" --no-pages >&2 || true
  s1=$(date +%s.%N)
  "$bin" baseline prior --labels "$out/sets/train/train.csv" --studies "$out/sets/$set/train.csv" \
    --kind optimal --out "$out/prior_$name.csv" >&2
  "$bin" score --labels "$out/sets/$set/train.csv" --submission "$out/pred_$name/submission.csv" \
    --json > "$out/score_$name.json"
  "$bin" score --labels "$out/sets/$set/train.csv" --submission "$out/prior_$name.csv" \
    --json > "$out/prior_score_$name.json"
  # The Bayes-optimal submission of these studies (P(label | true degree), `discus baseline
  # bayes`) scored on their labels: the Bayes limit realised on them.
  "$bin" baseline bayes --truth "$out/sets/$set/truth.json" --out "$out/bayes_$name.csv" >&2
  "$bin" score --labels "$out/sets/$set/train.csv" --submission "$out/bayes_$name.csv" \
    --json > "$out/bayes_score_$name.json"
  python3 "$root/bench/model_eval.py" "$out/sets/$set" "$out/pred_$name" > "$out/eval_$name.json"
  python3 "$root/bench/model_slices.py" "$out/sets/$set" "$out/pred_$name" > "$out/slices_$name.json"
  python3 - "$name" "$out" "$s0" "$s1" <<'PY'
import json, sys
name, out, s0, s1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
sc = json.load(open(f"{out}/score_{name}.json"))
pr = json.load(open(f"{out}/prior_score_{name}.json"))
ev = json.load(open(f"{out}/eval_{name}.json"))
b = json.load(open(f"{out}/synth.json"))["bayes_limit"]
bs = json.load(open(f"{out}/bayes_score_{name}.json"))
n = len([1 for _ in open(f"{out}/pred_{name}/submission.csv")]) - 1
print(f"-- {name}: {n // 25} studies, predict {s1 - s0:.1f} s")
print(f"   score {sc['score']:.4f}  optimal prior {pr['score']:.4f}  Bayes limit (cohort) {b['score']:.4f}"
      f"  Bayes-optimal on these studies {bs['score']:.4f}")
print(f"   Bayes-optimal groups: spinal {bs['spinal']:.4f} foraminal {bs['foraminal']:.4f}"
      f" subarticular {bs['subarticular']:.4f} any-severe {bs['any_severe']:.4f}")
print(f"   groups: spinal {sc['spinal']:.4f} foraminal {sc['foraminal']:.4f} subarticular {sc['subarticular']:.4f} any-severe {sc['any_severe']:.4f}")
print("   median localisation error, mm: " + ", ".join(f"{k} {v:.1f}" for k, v in ev["loc_median_mm"].items()))
print(f"   point sources {dict(ev['point_source'])}")
auc = ev["auc_severe"]
print(f"   AUC severe {auc:.3f}" if auc is not None else "   AUC severe n/a", f" ECE {ev['ece']:.4f}")
sl = json.load(open(f"{out}/slices_{name}.json"))
for g, cats in sl.items():
    print(f"   {g} by slice offset: " + ", ".join(
        f"{c} {v['weighted_log_loss']} ({v['findings']})" for c, v in cats.items() if c != "all"))
PY
}
echo "== results (out: $out)"
python3 - "$t0" "$t1" "$t2" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:])
print(f"train {t1 - t0:.0f} s, fine-tune {t2 - t1:.0f} s")
PY
echo "train: $(cat "$out/time_train.txt"); fine-tune: $(cat "$out/time_tune.txt")"
[[ -f "$out/time_graders.txt" ]] && echo "graders alone: $(cat "$out/time_graders.txt")"
[[ -f "$out/time_graders2.txt" ]] && echo "second graders: $(cat "$out/time_graders2.txt")"
judge held held "$model"
judge shift shift "$model"
judge shift_tuned shift "$tuned"
if [[ -f "$out/model_g2/model.toml" ]]; then
  judge held_ensemble held "$model" "$out/model_g2"
  judge shift_ensemble shift "$model" "$out/model_g2"
fi

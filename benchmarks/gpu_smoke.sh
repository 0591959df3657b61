#!/usr/bin/env bash
# The GPU check of one command (about 5 minutes on one CUDA GPU): run it from the repository root on a machine with a
# GPU, after `make install` (or any venv with a CUDA torch and `pip install -c requirements/lock.txt -e ".[all,bench]"`).
#   1. a smoke run of `textenv train` on CUDA (the tiny preset, then the demo preset on a bigger model if MODEL is set);
#   2. the benchmark rows B, D_ppo1 and E on the small model at batch 8, on CUDA (tokens/s in the JSON);
#   3. the main job's comparison on CUDA with bf16 autocast, on MODEL (default: SmolLM2-135M) at a small budget.
# Results go to runs/gpu/: paste the GPU's name and the figures into BENCHMARKS.md ("GPU").
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu}
MODEL=${MODEL:-}
mkdir -p "$OUT"
"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device is visible: this script measures the GPU path"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PYEOF
echo "== 1. smoke: textenv train --device cuda (tiny preset)"
"$PY" -m agents.cli train --preset tiny --device cuda --budget-tokens 256 --no-progress --out "$OUT/smoke-tiny"
echo "== 2. benchmark rows on CUDA"
"$PY" -m benchmarks.run --device cuda --models small --batches 8 --rows B D_ppo1 E --runs 3 --json "$OUT/rows.json" \
  || echo "(a row failed: see $OUT/rows.json)"
echo "== 3. the main job on CUDA, bf16${MODEL:+, model $MODEL}"
"$PY" -m agents.cli compare --env textenv/Sentiment-v0 --preset demo --seeds 2 --budget-tokens 1024 --device cuda \
  --precision bf16 ${MODEL:+--model "$MODEL"} --no-progress --out "$OUT/demo"
echo "done: $OUT/rows.json, $OUT/demo/report.md"

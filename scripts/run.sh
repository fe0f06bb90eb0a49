#!/usr/bin/env bash
# Train BYOV with configs/<name>.yaml, then evaluate the last checkpoint on the test split.
#   bash scripts/run.sh break_eggs [--key value ...]     (extra flags go to train.py)
#   NPROC=4 bash scripts/run.sh pour_milk                 (multi-GPU with torchrun)
#   bash scripts/run.sh demo                              (synthetic data, CPU-sized; also
#                                                          reports the untrained frozen features)
set -euo pipefail
cd "$(dirname "$0")/.."
names=$(ls configs | sed -n 's/\.yaml$//p' | tr '\n' ' ')
if [ $# -lt 1 ] || [ ! -f "configs/$1.yaml" ]; then
  echo "usage: bash scripts/run.sh <name> [--key value ...]; valid names: $names" >&2
  exit 2
fi
name=$1; shift
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-0}
if [ "${NPROC:-1}" -gt 1 ]; then
  torchrun --standalone --nproc_per_node="$NPROC" train.py --config "configs/$name.yaml" "$@"
else
  python train.py --config "configs/$name.yaml" "$@"
fi
out=$(python -c "import sys; from utils.config import load_config; print(load_config(sys.argv[1:])[0].output_dir)" --config "configs/$name.yaml" "$@")
python evaluate.py --config "configs/$name.yaml" "$@" --ckpt "$out/checkpoints/last.pth" \
  --json "$out/eval/last/metrics_test.json"
if [ "$name" = demo ]; then
  # the same four tasks on the frozen backbone's merged features, without any BYOV training
  python evaluate.py --config "configs/$name.yaml" "$@" --frozen_features \
    --json "$out/eval/frozen_features/metrics_test.json"
  python -m byov.eval.report compare "$out/eval/frozen_features/metrics_test.json" \
    "$out/eval/last/metrics_test.json" --names "frozen features" "BYOV (trained)"
fi

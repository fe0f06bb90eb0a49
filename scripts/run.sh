#!/usr/bin/env bash
# Train BYOV with configs/<name>.yaml, then evaluate the best (else last) checkpoint on test.
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
resolved=$(python -c "import sys; from utils.config import load_config
c = load_config(sys.argv[1:])[0]; print(c.features, c.output_dir)" --config "configs/$name.yaml" "$@")
features=${resolved%% *}; out=${resolved#* }
if [ "$features" != fly ]; then
  # the frozen-backbone feature cache (README "Feature cache"); finished videos are skipped
  python -m byov.features extract --config "configs/$name.yaml" "$@"
fi
if [ "${NPROC:-1}" -gt 1 ]; then
  torchrun --standalone --nproc_per_node="$NPROC" train.py --config "configs/$name.yaml" "$@"
else
  python train.py --config "configs/$name.yaml" "$@"
fi
# test once, with the checkpoint chosen on val (best.pth, by --best_metric); last.pth when no
# downstream evaluation ran during training
ckpt=$out/checkpoints/best.pth
[ -f "$ckpt" ] || ckpt=$out/checkpoints/last.pth
stem=$(basename "$ckpt" .pth)
python evaluate.py --config "configs/$name.yaml" "$@" --ckpt "$ckpt" \
  --json "$out/eval/$stem/metrics_test.json"
if [ "$name" = demo ]; then
  # the same four tasks on the frozen backbone's merged features, without any BYOV training
  python evaluate.py --config "configs/$name.yaml" "$@" --frozen_features \
    --json "$out/eval/frozen_features/metrics_test.json"
  python -m byov.eval.report compare "$out/eval/frozen_features/metrics_test.json" \
    "$out/eval/$stem/metrics_test.json" --names "frozen features" "BYOV ($stem.pth)"
fi

#!/usr/bin/env bash
# Train BYOV with configs/<name>.yaml, then evaluate the best (else last) checkpoint on test.
#   bash scripts/run.sh break_eggs [--key value ...]     (extra flags go to train.py)
#   NPROC=4 bash scripts/run.sh pour_milk                 (multi-GPU with torchrun)
#   bash scripts/run.sh demo                              (synthetic data, CPU-sized; also
#                                                          evaluates the trivial baselines)
#   bash scripts/run.sh charades_ego/demo                 (Charades-Ego protocol on synthetic data;
#                                                          charades_ego for the real release)
#   bash scripts/run.sh ae2/break_eggs                    (AE2's released setting; --method tcc,
#                                                          dtw, dtw_consistency, dtw_contrastive, vava)
set -euo pipefail
cd "$(dirname "$0")/.."
# run configs: configs/<name>.yaml and configs/ae2/<name>.yaml (benchmark grids are not runs)
names=$(cd configs && find . -name '*.yaml' -not -path './benchmark/*' | sed 's#^\./##; s/\.yaml$//' | sort | tr '\n' ' ')
if [ $# -lt 1 ] || [ ! -f "configs/$1.yaml" ]; then
  echo "usage: bash scripts/run.sh <name> [--key value ...]; valid names: $names" >&2
  exit 2
fi
name=$1; shift
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-0}
resolved=$(python -c "import sys; from utils.config import load_config
c = load_config(sys.argv[1:])[0]; print(c.features, c.method, c.output_dir, c.dataset_root)" --config "configs/$name.yaml" "$@")
read -r features method out root <<< "$resolved"
if [ "$name" = charades_ego/demo ]; then
  # the demo's synthetic Charades-Ego-format data (docs/charades_ego.md); reused when present
  python -m byov.data.synthetic_charades --root "$root"
fi
if [ "$method" = byov ] && [ "$features" != fly ]; then
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
  # the same four tasks on the trivial baselines: relative time t/L alone, the frozen backbone's
  # merged features, and the untrained model; a trained model must beat all three
  names=()
  files=()
  for b in time frozen random_init; do
    python evaluate.py --config "configs/$name.yaml" "$@" --baseline "$b" \
      --json "$out/eval/baseline_$b/metrics_test.json"
    names+=("baseline: $b")
    files+=("$out/eval/baseline_$b/metrics_test.json")
  done
  python -m byov.eval.report compare "${files[@]}" "$out/eval/$stem/metrics_test.json" \
    --names "${names[@]}" "$method ($stem.pth)"
elif [ "$name" = charades_ego/demo ]; then
  # the video-level baselines: chance (training class prevalence), the frozen backbone's merged
  # features and the untrained model, mean-pooled and probed like the checkpoint
  names=()
  files=()
  for b in prior frozen random_init; do
    python evaluate.py --config "configs/$name.yaml" "$@" --baseline "$b" \
      --json "$out/eval/baseline_$b/metrics_test.json" > /dev/null
    names+=("baseline: $b")
    files+=("$out/eval/baseline_$b/metrics_test.json")
  done
  python -m byov.eval.video_level compare "${files[@]}" "$out/eval/$stem/metrics_test.json" \
    --names "${names[@]}" "$method ($stem.pth)"
fi
# the visual report of the tested checkpoint (README "Report"); prints the path of its index.html
python -m byov.report "$out" --ckpt "$ckpt" --split test ||
  echo "run.sh: the report failed (message above); training and evaluation are done" >&2

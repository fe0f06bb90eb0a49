#!/usr/bin/env bash
# Train BYOV with configs/<name>.yaml, then evaluate best.pth (chosen on val; else last.pth, said)
# on test.
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
names=$(cd configs && find . -name '*.yaml' -not -path './grid/*' | sed 's#^\./##; s/\.yaml$//' | sort | tr '\n' ' ')
if [ $# -lt 1 ] || [ ! -f "configs/$1.yaml" ]; then
  echo "usage: bash scripts/run.sh <name> [--key value ...]; valid names: $names" >&2
  exit 2
fi
name=$1; shift
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-0}
# the resolved settings train.py will see; a bad flag or config stops here with one line
resolved=$(python -c "import sys; from utils.config import ConfigError, build_parser, load_config
p = build_parser(entry='train'); p.prog = 'run.sh (train.py flags)'
try:
    c = load_config(sys.argv[1:], p)[0]
except ConfigError as e:
    sys.exit(f'run.sh: error: {e}')
print(c.features, c.method, c.output_dir, c.dataset_root)" --config "configs/$name.yaml" "$@")
read -r features method out root <<< "$resolved"
# the extra flags go to train.py; the feature extraction and evaluate.py take the ones they use
# (each entry point refuses the flags it does not use, e.g. evaluate.py --epochs)
flags_for() { python -c "import sys; from utils.config import argv_for
sys.stdout.write(''.join(a + chr(0) for a in argv_for(sys.argv[1], sys.argv[2:])))" "$@"; }
mapfile -d '' extract_flags < <(flags_for extract "$@")
mapfile -d '' eval_flags < <(flags_for evaluate "$@")
if [ "$name" = charades_ego/demo ]; then
  # the demo's synthetic Charades-Ego-format data (docs/charades_ego.md); reused when present
  python -m byov.data.synthetic_charades --root "$root"
fi
if [ "$method" = byov ] && [ "$features" != fly ]; then
  # the frozen-backbone feature cache (docs/training.md#feature-cache); finished videos are skipped
  python -m byov.features extract --config "configs/$name.yaml" "${extract_flags[@]}"
fi
if [ "${NPROC:-1}" -gt 1 ]; then
  torchrun --standalone --nproc_per_node="$NPROC" train.py --config "configs/$name.yaml" "$@"
else
  python train.py --config "configs/$name.yaml" "$@"
fi
# test once, with the checkpoint chosen on val (best.pth, by --best_metric) when the run wrote
# one; otherwise with last.pth, and say so (train.py refuses an --eval_task that cannot compute
# --best_metric, so this only happens with --ds_every_n_epoch 0 or no defined val value)
ckpt=$out/checkpoints/best.pth
if [ ! -f "$ckpt" ]; then
  ckpt=$out/checkpoints/last.pth
  echo "run.sh: no best.pth (no val evaluation chose one): testing last.pth, the final epoch, not chosen on val" >&2
fi
stem=$(basename "$ckpt" .pth)
python evaluate.py --config "configs/$name.yaml" "${eval_flags[@]}" --ckpt "$ckpt" \
  --json "$out/eval/$stem/metrics_test.json"
if [ "$name" = demo ]; then
  # the same four tasks on the trivial baselines: relative time t/L alone, the frozen backbone's
  # merged features, and the untrained model; a trained model must beat all three
  names=()
  files=()
  for b in time frozen random_init; do
    python evaluate.py --config "configs/$name.yaml" "${eval_flags[@]}" --baseline "$b" \
      --json "$out/eval/baseline_$b/metrics_test.json"
    names+=("baseline: $b")
    files+=("$out/eval/baseline_$b/metrics_test.json")
  done
  python -m byov.eval.tables compare "${files[@]}" "$out/eval/$stem/metrics_test.json" \
    --names "${names[@]}" "$method ($stem.pth)"
elif [ "$name" = charades_ego/demo ]; then
  # the video-level baselines: chance (training class prevalence), the frozen backbone's merged
  # features and the untrained model, mean-pooled and probed like the checkpoint
  names=()
  files=()
  for b in prior frozen random_init; do
    python evaluate.py --config "configs/$name.yaml" "${eval_flags[@]}" --baseline "$b" \
      --json "$out/eval/baseline_$b/metrics_test.json" > /dev/null
    names+=("baseline: $b")
    files+=("$out/eval/baseline_$b/metrics_test.json")
  done
  python -m byov.eval.video_level compare "${files[@]}" "$out/eval/$stem/metrics_test.json" \
    --names "${names[@]}" "$method ($stem.pth)"
fi
# the visual report of the tested checkpoint (docs/report.md); prints the path of its index.html
python -m byov.report "$out" --ckpt "$ckpt" --split test ||
  echo "run.sh: the report failed (message above); training and evaluation are done" >&2

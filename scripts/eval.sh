#!/usr/bin/env bash
# Evaluate checkpoints on the test split (AE2 protocol); one line per checkpoint in the summary.
#   bash scripts/eval.sh logs/exp_break_eggs/bestconfig/checkpoints/best.pth [more.pth ...] [-- --eval_mode val]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
ckpts=(); extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  ckpts+=("$1"); shift
done
if [ ${#ckpts[@]} -eq 0 ]; then
  echo "usage: bash scripts/eval.sh CKPT.pth [CKPT.pth ...] [-- --key value ...]" >&2; exit 2
fi
for c in "${ckpts[@]}"; do
  echo "== $c"
  python evaluate.py --ckpt "$c" "${extra[@]}"
done

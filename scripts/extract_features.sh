#!/usr/bin/env bash
# Extract the frozen-backbone feature cache for configs/<name>.yaml (docs/training.md#feature-cache).
#   bash scripts/extract_features.sh break_eggs [--key value ...] [--splits train,val,test]
#                                    [--kind tokens|merged|both]
# Then train from it: bash scripts/run.sh break_eggs --features tokens
# Rerunning resumes (finished videos are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
names=$(ls configs | sed -n 's/\.yaml$//p' | tr '\n' ' ')
if [ $# -lt 1 ] || [ ! -f "configs/$1.yaml" ]; then
  echo "usage: bash scripts/extract_features.sh <name> [--key value ...] [--splits ...]" \
       "[--kind tokens|merged|both]; valid names: $names" >&2
  exit 2
fi
name=$1; shift
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-0}
exec python -m byov.features extract --config "configs/$name.yaml" "$@"

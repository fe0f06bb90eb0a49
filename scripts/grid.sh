#!/usr/bin/env bash
# Run a benchmark grid and write its tables (docs/grid.md).
#   bash scripts/grid.sh configs/grid/demo.yaml [--launcher torchrun --nproc 4]
#   bash scripts/grid.sh configs/grid/ae2.yaml --launcher slurm [--submit]
#   bash scripts/grid.sh configs/grid/ae2.yaml --tables-only
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/grid.sh GRID.yaml [--launcher local|torchrun|slurm] [--nproc N]" \
       "[--tables-only] [--dry-run] [--continue-on-error] [--submit]" >&2
  exit 2
fi
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-0}
exec python -m byov.grid "$@"

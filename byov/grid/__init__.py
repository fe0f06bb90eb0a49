"""Benchmark grids: methods x datasets x seeds (+ trivial baselines), run and tabulated.

`python -m byov.grid GRID.yaml` trains and evaluates what is missing, resumes interrupted
runs, skips finished ones and writes one table per dataset in the BYOV/AE2 papers' layout, with
mean ± std over seeds and the published numbers beside ours. Modules: `grid` (the yaml and its
jobs), `runner` (local / torchrun / Slurm array launch), `tables`, `published`.
"""

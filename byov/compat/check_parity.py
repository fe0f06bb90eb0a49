"""Compare our BYOV with the released code's outputs stored in a parity fixture.

    python -m byov.compat.check_parity tests/fixtures/model_parity.pt

Prints the max abs difference of every output and loss term; exits 1 above the tolerance (1e-5).
"""
from __future__ import annotations

import argparse
import sys

import torch

from byov.compat import load_released

TOLERANCE = 1e-5
_OUTPUTS = ("z1", "z2", "pred_msm", "pred_mcm_view1", "pred_mcm_view2")
_LOSSES = {"msm": "msm", "mcm_view1": "mcm_view1", "mcm_view2": "mcm_view2", "total": "loss"}


def check_parity(path: str) -> dict[str, float]:
    """Run the fixture's inputs and noise through our model; return {name: max abs diff}."""
    model, fx = load_released(path)
    with torch.no_grad():
        out = model(fx["x1"], fx["x2"], fx["noise"])
    diffs = {}
    for k in _OUTPUTS:
        diffs[k] = (out[k] - fx[k]).abs().max().item()
    for k, v in fx["mask"].items():
        diffs[f"mask.{k}"] = (out["mask"][k] - v).abs().max().item()
    for k, ours in _LOSSES.items():
        diffs[f"loss.{k}"] = (out[ours] - fx["loss"][k]).abs().item()
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fixture", help="path to model_parity.pt or model_parity_released.pt")
    ap.add_argument("--tol", type=float, default=TOLERANCE)
    args = ap.parse_args(argv)
    diffs = check_parity(args.fixture)
    worst = max(diffs.values())
    for k, v in diffs.items():
        print(f"{k:22s} max|diff| = {v:.3e}{'  FAIL' if v > args.tol else ''}")
    print(f"{'PASS' if worst <= args.tol else 'FAIL'}: worst {worst:.3e} (tolerance {args.tol:g})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())

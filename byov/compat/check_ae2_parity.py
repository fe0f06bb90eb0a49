"""Compare byov.ae2 with the released AE2 code's outputs stored in a parity fixture.

    python -m byov.compat.check_ae2_parity ../shared/fixtures/ae2_parity.pt

Reads every case generically (objective, settings, shapes from the file) and prints one line per
case with its max differences against the tolerances the fixture's README recommends; exits 1 if
any exceeds its tolerance.
"""
from __future__ import annotations

import argparse
import sys

import torch

from byov.ae2.embedder import AE2Embedder, scale_frames
from byov.ae2.losses import alignment_loss, settings_from_released
from byov.ae2.vava import vava_loss

DTW_OBJECTIVES = ("dtw", "dtw_consistency", "dtw_contrastive")
# (measure, tolerance): "abs", "rel" (to max(1, |ref|) for losses; to max|ref| otherwise)
TOL_LOSS = 1e-5  # abs, times max(1, |ref|)
TOL_GRAD = {"dtw": 2e-3, "other": 1e-5}  # max abs diff / max |ref grad|
TOL_VAVA_DIS = 1e-5  # relative
TOL_EMBEDDINGS, TOL_TRUNK = 1e-5, 1e-4  # abs


def load_fixture(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def released_embedder_state(fx: dict) -> dict:
    """The fixture's int8 embedder weights as a float state dict under the released key names."""
    w = fx["embedder_weights"]
    return {k: q.float() * w["scale"][k] for k, q in w["int8"].items()} | w["other"]


def check_loss_case(case: dict) -> dict[str, tuple[float, float]]:
    """{quantity: (difference, tolerance)} for one loss case."""
    inp, ref = case["inputs"], case["outputs"]
    emb = inp["embeddings"].clone().requires_grad_(True)
    first_half = case.get("random", {}).get("cyclic_first_half")
    loss, loss2 = alignment_loss(case["objective"], emb, inp["steps"], inp["seq_lens"],
                                 inp.get("pos_steps"), int(inp["global_step"]),
                                 first_half=first_half, **settings_from_released(case["settings"]))
    loss.backward()
    out = {}
    for k, v in (("loss", loss), ("loss2", loss2)):
        out[k] = (abs(v.item() - ref[k].item()), TOL_LOSS * max(1.0, abs(ref[k].item())))
    g_ref = case["grads"]["embeddings"]
    tol = TOL_GRAD["dtw" if case["objective"] in DTW_OBJECTIVES else "other"]
    out["grads"] = ((emb.grad - g_ref).abs().max().item() / g_ref.abs().max().item(), tol)
    if case["objective"] == "vava":
        with torch.no_grad():
            *_, trace = vava_loss(inp["embeddings"], int(inp["global_step"]), return_trace=True)
        dis_ref = case["trace"]["all_loss.vava_dis"]
        rel = ((trace["vava_dis"] - dis_ref).abs() / dis_ref.abs()).max().item()
        out["vava_dis"] = (rel, TOL_VAVA_DIS)
        mi = case["trace"]["vava_loss.min_index"]
        out["min_index"] = (float((trace["min_index"].to(mi.dtype) != mi).sum()), 0.0)
    return out


def check_embedder_case(case: dict, state: dict) -> dict[str, tuple[float, float]]:
    s = case["settings"]
    model = AE2Embedder(embedding_size=s["embedding_size"], input_size=s["input_size"],
                        num_context_steps=s["num_context_steps"], freeze_base=s["freeze_base"],
                        pretrained=False)
    model.load_released_state_dict(state)
    model.eval()
    x = scale_frames(case["inputs"]["frames_uint8"])
    with torch.no_grad():
        feats = model.trunk_features(x.reshape(-1, *x.shape[2:]))
        pooled = model.pool_features(feats)
        emb = model.embedding(model.fc(pooled.reshape(x.shape[0], -1, pooled.shape[-1])))
    tr = case["trace"]
    return {
        "embeddings": ((emb - case["outputs"]["embeddings"]).abs().max().item(), TOL_EMBEDDINGS),
        "pooled": ((pooled - tr["pooled"]).abs().max().item(), TOL_TRUNK),
        "trunk_channel_mean": ((feats.mean((2, 3)) - tr["trunk_channel_mean"]).abs().max().item(),
                               TOL_TRUNK),
        "trunk_shape": (float(list(feats.shape) != list(tr["trunk_shape"])), 0.0),
    }


def check_ae2_parity(path: str, cases: list[str] | None = None) -> dict[str, dict]:
    """{case: {quantity: (difference, tolerance)}} for the fixture's cases (all by default)."""
    fx = load_fixture(path)
    state = None
    results = {}
    for name, case in fx["cases"].items():
        if cases and name not in cases:
            continue
        if case["objective"] == "embedder":
            state = state if state is not None else released_embedder_state(fx)
            results[name] = check_embedder_case(case, state)
        else:
            results[name] = check_loss_case(case)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fixture", help="path to ae2_parity.pt")
    ap.add_argument("--case", action="append", help="check only this case (repeatable)")
    args = ap.parse_args(argv)
    results = check_ae2_parity(args.fixture, args.case)
    failed = []
    for name, diffs in results.items():
        bad = [k for k, (d, tol) in diffs.items() if not d <= tol]
        parts = "  ".join(f"{k} {d:.2e}/{tol:.0e}" for k, (d, tol) in diffs.items())
        print(f"{name:30s} {'FAIL' if bad else 'ok  '}  {parts}")
        failed += [f"{name}.{k}" for k in bad]
    print(f"{'PASS' if not failed else 'FAIL'}: {len(results)} cases"
          + (f"; over tolerance: {', '.join(failed)}" if failed else ""))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())

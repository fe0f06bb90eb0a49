"""byov.ae2 against the released AE2 code's numbers (tests/fixtures/ae2_parity.pt).

Every case of the file is read generically (objective, settings and shapes come from the file), so
the same tests run unchanged on fixtures with other seeds, shapes and datasets. Tolerances are the
ones tests/fixtures/README.md gives for this file.
"""
import os

import pytest
import torch

from byov.ae2.dtw import draw_first_half
from byov.ae2.embedder import AE2Embedder, embed_video, scale_frames
from byov.ae2.losses import alignment_loss, settings_from_released
from byov.ae2.sampling import sample_clip
from byov.ae2.softdtw import soft_dtw_table, dtw_cost
from byov.ae2.vava import vava_loss

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "ae2_parity.pt")
FX = torch.load(FIXTURE, map_location="cpu", weights_only=True)
LOSS_CASES = [n for n, c in FX["cases"].items() if c["objective"] != "embedder"]
EMBEDDER_CASES = [n for n, c in FX["cases"].items() if c["objective"] == "embedder"]
DTW = ("dtw", "dtw_consistency", "dtw_contrastive")


def _run_loss(case):
    inp = case["inputs"]
    emb = inp["embeddings"].clone().requires_grad_(True)
    half = case.get("random", {}).get("cyclic_first_half")
    loss, loss2 = alignment_loss(case["objective"], emb, inp["steps"], inp["seq_lens"],
                                 inp.get("pos_steps"), int(inp["global_step"]), first_half=half,
                                 **settings_from_released(case["settings"]))
    loss.backward()
    return loss, loss2, emb.grad


def test_fixture_has_every_objective():
    objectives = {FX["cases"][n]["objective"] for n in LOSS_CASES}
    assert objectives == {"tcc", "dtw", "dtw_consistency", "dtw_contrastive", "vava"}
    assert len(EMBEDDER_CASES) >= 1


@pytest.mark.parametrize("name", LOSS_CASES)
def test_loss_value_and_gradients(name):
    case = FX["cases"][name]
    loss, loss2, grad = _run_loss(case)
    for ours, key in ((loss, "loss"), (loss2, "loss2")):
        ref = case["outputs"][key]
        assert ours.shape == () and ours.dtype == ref.dtype
        assert abs(ours.item() - ref.item()) <= 1e-5 * max(1.0, abs(ref.item())), key
    g_ref = case["grads"]["embeddings"]
    tol = 2e-3 if case["objective"] in DTW else 1e-5
    assert (grad - g_ref).abs().max() <= tol * g_ref.abs().max()


@pytest.mark.parametrize("name", [n for n in LOSS_CASES if FX["cases"][n]["objective"] in DTW])
def test_soft_dtw_tables(name):
    """The tables the released smoothDTW built, in its call order, to float32 rounding."""
    case = FX["cases"][name]
    e = case["inputs"]["embeddings"]
    refs = list(case["trace"]["sdtw_tables"])
    pairs = []
    for b in range(e.shape[0]):
        x, y = e[b, 0], e[b, 1]
        if case["objective"] == "dtw":
            pairs += [(x, y)]
        elif case["objective"] == "dtw_consistency":
            pairs += [(x, y), (y, x)]
        else:
            pos = case["inputs"]["pos_steps"][b]
            if case["settings"]["cyclic"]:
                h = pos.shape[-1] // 2
                pos = pos[:, :h] if case["random"]["cyclic_first_half"][b] else pos[:, h:]
            pairs += [(x, y), (x[pos[0]], y[pos[1]]), (x[pos[0]], y[pos[1]].flip(0))]
    assert len(pairs) == len(refs)
    for (x, y), ref in zip(pairs, refs):
        with torch.no_grad():
            ours = soft_dtw_table(dtw_cost(x[None], y[None]))[0]
        assert ours.shape == ref.shape
        assert torch.equal(ours[0], ref[0]) and torch.equal(ours[:, 0], ref[:, 0])  # borders
        assert ((ours - ref).abs() <= 1e-6 * ref.abs() + 1e-6).all()


@pytest.mark.parametrize("name", [n for n in LOSS_CASES if FX["cases"][n]["objective"] == "vava"])
def test_vava_transport_term_and_matches(name):
    """vava_dis pins phi (global_step), which the loss value barely shows."""
    case = FX["cases"][name]
    with torch.no_grad():
        *_, trace = vava_loss(case["inputs"]["embeddings"], int(case["inputs"]["global_step"]),
                              return_trace=True)
    tr = case["trace"]
    assert trace["phi"] == pytest.approx(case["settings"]["phi"], rel=1e-12)
    assert torch.equal(trace["min_index"].to(tr["vava_loss.min_index"].dtype),
                       tr["vava_loss.min_index"])
    ref = tr["all_loss.vava_dis"]
    assert ((trace["vava_dis"] - ref).abs() <= 1e-5 * ref.abs()).all()
    for k in ("C_x", "C_y", "best_distance", "worst_distance", "loss_inter", "overall"):
        assert torch.allclose(trace[k], tr[f"all_loss.{k}"], rtol=1e-5, atol=0), k


@pytest.mark.parametrize("name", [n for n in LOSS_CASES if n in FX["cases"]
                                  and FX["cases"][n]["settings"]["cyclic"]
                                  and FX["cases"][n]["objective"] == "dtw_contrastive"])
def test_cyclic_draws_map_to_halves(name):
    """The released rule: first half iff random.random() < 0.5."""
    r = FX["cases"][name]["random"]
    assert torch.equal(r["cyclic_draws"] < 0.5, r["cyclic_first_half"])
    assert draw_first_half(4, torch.Generator().manual_seed(0)).dtype == torch.bool


def test_sampler_reproduces_fixture_draws():
    """The fixture README's recipe: per loss case i, a generator seeded 1000 * seed + i draws
    each (b, view)'s clip in order, then the embeddings."""
    seed, scale = FX["meta"]["seed"], FX["meta"]["embedding_scale"]
    for i, name in enumerate(LOSS_CASES):
        case = FX["cases"][name]
        inp, st = case["inputs"], case["settings"]
        g = torch.Generator().manual_seed(1000 * seed + i)
        B, _, T = inp["steps"].shape
        for b in range(B):
            for v in range(2):
                steps, frames = sample_clip(int(inp["seq_lens"][b, v]), T, g,
                                            st["frame_stride"], st["random_offset"])
                assert torch.equal(steps, inp["steps"][b, v]), (name, b, v)
                assert torch.equal(frames, inp["context_steps"][b, v]), (name, b, v)
        emb = torch.randn(inp["embeddings"].shape, generator=g) * scale
        assert torch.equal(emb, inp["embeddings"]), name


# -- embedder ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def released_state():
    w = FX["embedder_weights"]
    return {k: q.float() * w["scale"][k] for k, q in w["int8"].items()} | w["other"]


@pytest.fixture(scope="module")
def embedders(released_state):
    """{case: (model, frames, trunk features)}, one model per embedder case, built lazily."""
    cache = {}

    def get(name):
        if name not in cache:
            s = FX["cases"][name]["settings"]
            model = AE2Embedder(embedding_size=s["embedding_size"], input_size=s["input_size"],
                                num_context_steps=s["num_context_steps"],
                                freeze_base=s["freeze_base"], pretrained=False)
            model.load_released_state_dict(released_state)
            model.eval()
            x = scale_frames(FX["cases"][name]["inputs"]["frames_uint8"])
            with torch.no_grad():
                feats = model.trunk_features(x.reshape(-1, *x.shape[2:]))
            cache[name] = (model, x, feats)
        return cache[name]
    return get


@pytest.mark.parametrize("name", EMBEDDER_CASES)
def test_embedder_outputs(name, embedders):
    case = FX["cases"][name]
    model, x, feats = embedders(name)
    assert model.ksize == case["settings"]["ksize"]
    assert list(feats.shape) == list(case["trace"]["trunk_shape"])
    assert (feats.mean((2, 3)) - case["trace"]["trunk_channel_mean"]).abs().max() <= 1e-4
    with torch.no_grad():
        pooled = model.pool_features(feats)
        out = model(x)
    assert (pooled - case["trace"]["pooled"]).abs().max() <= 1e-4
    ref = case["outputs"]["embeddings"]
    B, T2 = x.shape[:2]
    assert out.shape == ref.shape == (B, T2 // 2, case["settings"]["embedding_size"])
    assert (out - ref).abs().max() <= 1e-5


def test_intended_grouping_changes_the_head(embedders):
    """The permute grouping pairs each step's two frames on a time axis; the released view mixes
    channels: the pooled features differ, and only the released one matches the fixture."""
    name = EMBEDDER_CASES[0]
    model, x, feats = embedders(name)
    c, hw = feats.shape[1], feats.shape[2:]
    g = model.group(feats)  # clip 0 = the memory of frames 0 (context) and 1 (main)
    assert torch.equal(g[0, :c // 2], feats[0].view(c // 2, 2, *hw))
    assert torch.equal(g[0, c // 2:], feats[1].view(c // 2, 2, *hw))
    model.released_grouping = False
    try:
        g = model.group(feats)
        assert torch.equal(g[0, :, 0], feats[0]) and torch.equal(g[0, :, 1], feats[1])
        with torch.no_grad():
            pooled = model.pool_features(feats)
    finally:
        model.released_grouping = True
    assert (pooled - FX["cases"][name]["trace"]["pooled"]).abs().max() > 1e-3


def test_embed_video_pairs_each_frame_with_its_context(embedders):
    model, x, _ = embedders(EMBEDDER_CASES[0])
    frames = x[0, :3]  # a 3-frame "video"
    model.train()
    out = embed_video(model, frames, frame_stride=1, chunk_size=2)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():  # frame f with context max(0, f - 1): (0, 0), (0, 1), (1, 2)
        ref = model(frames[[0, 0, 0, 1, 1, 2]][None])[0]
    assert out.shape == (3, model.embedding.out_features)
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)

"""`--compile` (docs/gpu.md#compile): the trainable submodules are compiled in place, so parameter
names, checkpoints and the step's numbers stay those of the eager run. torch.compile's "eager"
backend traces with TorchDynamo exactly as inductor does, without generating kernels (seconds
instead of minutes on a CPU); what inductor then gains is measured, not tested."""
import pytest
import torch
from torch.utils.data import default_collate

from byov.compiling import compile_trainable, trainable_children
from train_helpers import method_of


def _config(args, **over):
    from utils.config import load_config, to_dict
    return to_dict(load_config(args("compile", **over))[0])


def _batch(method, config, n=2):
    from byov.data.layout import list_videos
    ds = method.pair_dataset(list_videos(config["dataset_root"], config["dataset"], "train"),
                             seed=0, length=n)
    ds.set_epoch(0)
    return default_collate([ds[i] for i in range(n)])


def test_compiled_step_equals_eager_and_keeps_checkpoint_keys(args):
    config, want = _config(args), ["model"]
    torch.manual_seed(0)
    method = method_of(config).train()
    batch = _batch(method, config)
    keys = {k: list(v) for k, v in method.state_entries().items()}
    torch.manual_seed(1)
    eager = method(batch, (0, 0, 0, 0))["loss"]
    assert trainable_children(method) == want
    assert compile_trainable(method, backend="eager") == want
    assert all(getattr(method, name)._compiled_call_impl is not None for name in want)
    torch.manual_seed(1)
    compiled = method(batch, (0, 0, 0, 0))["loss"]
    assert torch.equal(eager, compiled)
    compiled.backward()
    assert {k: list(v) for k, v in method.state_entries().items()} == keys  # no _orig_mod.


def test_what_is_compiled_is_the_trainable_part(args):
    """BYOV: its encoder/decoder, not the frozen backbone (also unfrozen, then); AE2: the
    embedder (dynamo tracing a ResNet-50 takes a minute here, so it is not compiled in CI)."""
    from test_methods import AE2_TINY
    assert trainable_children(method_of(_config(args))) == ["model"]
    unfrozen = method_of(_config(args, freeze_base=False))
    assert trainable_children(unfrozen) == ["frame_encoder", "model"]
    ae2 = method_of(_config(args, **{**AE2_TINY, "method": "dtw_contrastive"}),
                       pretrained=False)
    assert trainable_children(ae2) == ["embedder"]


def test_compile_config_key_compiles_the_run(args, monkeypatch):
    """train.py --compile reaches compile_trainable (patched to the eager backend here)."""
    import byov.compiling
    from train_helpers import train_in_process

    seen = []
    real = byov.compiling.compile_trainable

    def eager(method, **kw):
        seen.append(type(method).__name__)
        return real(method, backend="eager")
    monkeypatch.setattr(byov.compiling, "compile_trainable", eager)
    out = train_in_process(args("compiled", compile=True))
    assert seen == ["ByovMethod"] and out["train/loss"] > 0


def test_compile_without_trainable_parameters_is_an_error():
    frozen = torch.nn.Sequential(torch.nn.Linear(2, 2)).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable submodule"):
        compile_trainable(frozen)

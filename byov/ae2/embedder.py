"""AE2's frame-pair encoder (the released `Embedder`, `--task align`): a ResNet-50 trunk to
layer3, a 3-D conv head over each step's (context, main) frame pair, global max pooling, MLP.

Released: zihuixue/AlignEgoExo models/embedder.py:34-110. Input (B, 2T, 3, H, W) in [-1, 1]
(uint8 / 127.5 - 1, see scale_frames), ordered (context_1, step_1, context_2, step_2, ...);
output (B, T, embedding_size), not normalised.

Released behaviour kept by default, behind keywords:
- `released_grouping=True`: the trunk's (B*2T, 1024, h, w) output is *viewed* as
  (B*T, 1024, 2, h, w) (embedder.py:100-101), a memory reinterpretation: input channel c < 512 at
  "time" t holds channel 2c + t of the context frame, channel c >= 512 holds channel 2c + t - 1024
  of the main frame. False stacks the two frames on a real time axis (a permute), as intended.
Differences from the released module (no effect on the fixture's eval-mode numbers):
- `freeze_base=True` also keeps the trunk in eval mode (frozen BatchNorm statistics) and runs it
  without autograd; the released flag only sets requires_grad False, so its BatchNorms still use
  and update batch statistics in training mode.
- the max-pool kernel is the trunk's output size for any input size (the released code knows
  only 224 -> 14 and 168 -> 11 and raises otherwise).
- Pretrained weights are read from torchvision's cache (or a file) and never downloaded.
"""
from __future__ import annotations

import os
from typing import Iterator

import torch
import torch.nn as nn

from byov.errors import ByovError
from byov.models.frame_encoders import WeightsNotFoundError, _halve, _torchvision_state

TRUNK_CHANNELS = 1024  # ResNet-50 layer3
HEAD_CHANNELS = 256
DROPOUT = 0.1
# the file the released code downloads (its own model_urls, embedder.py:209); torchvision >= 0.13
# names the ImageNet V1 weights resnet50-0676ba61.pth
RELEASED_WEIGHTS_FILE = "resnet50-19c8e357.pth"
RELEASED_WEIGHTS_URL = "https://download.pytorch.org/models/" + RELEASED_WEIGHTS_FILE
_RENAME = (("base_model.", "trunk."), ("conv_layers.", "head."), ("fc_layers.", "fc."),
           ("embedding_layer.", "embedding."))


class AE2WeightsError(ByovError, ValueError):
    """A weights file or state dict does not fit the AE2 embedder; the message names the keys."""


def scale_frames(frames_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1] as the released dataset: (x / 127.5) - 1 computed in
    float64, then cast (dataset/video_align_dataset.py:92, 152). Any shape."""
    return (frames_uint8.double() / 127.5 - 1.0).float()


def convert_released_state_dict(sd: dict) -> dict:
    """Map the released Embedder's state-dict keys (base_model.*, conv_layers.*, fc_layers.*,
    embedding_layer.*) onto AE2Embedder's (trunk.*, head.*, fc.*, embedding.*); tensors are shared.

    Raises:
        AE2WeightsError: a key belongs to none of those modules (e.g. a RoIPosEmbedder's).
    """
    out = {}
    for k, v in sd.items():
        for old, new in _RENAME:
            if k.startswith(old):
                out[new + k[len(old):]] = v
                break
        else:
            raise AE2WeightsError(f"released key {k!r} is not part of AE2's Embedder (expected "
                                  f"prefixes {[o for o, _ in _RENAME]})")
    return out


def load_imagenet_trunk_state(path: str = "") -> tuple[dict, str]:
    """torchvision's ImageNet ResNet-50 (V1) state dict and where it came from; never downloads.

    Args:
        path: a .pth state-dict file, or "" for torchvision's cache directory
            (<torch hub dir>/checkpoints), where the released file resnet50-19c8e357.pth or
            torchvision's name for the same V1 weights, resnet50-0676ba61.pth, is looked up.
    Raises:
        WeightsNotFoundError: no such file; the message says what to fetch and where to put it.
    """
    from torchvision.models import ResNet50_Weights

    if not path:
        legacy = os.path.join(torch.hub.get_dir(), "checkpoints", RELEASED_WEIGHTS_FILE)
        if os.path.isfile(legacy):
            return torch.load(legacy, map_location="cpu", weights_only=True), legacy
    try:
        return _torchvision_state(path, "resnet50", [ResNet50_Weights.IMAGENET1K_V1])
    except WeightsNotFoundError as e:
        if path:
            raise
        raise WeightsNotFoundError(
            f"{e} The released AE2 code used {RELEASED_WEIGHTS_URL}; that file in the same "
            f"directory works too. Do not use the V2 weights (resnet50-11ad3fa6.pth): they "
            f"are a different network.") from e


def _resnet50_trunk(state: dict | None, source: str) -> nn.Module:
    """torchvision's ResNet-50 without layer4 and fc (the released trunk, embedder.py:41-43).

    Built on the meta device so the deleted layer4 (15M parameters) is never initialised; then
    either `state` (a torchvision resnet50 state dict; layer4 / fc keys are ignored) is loaded, or
    the released init rule is applied: kaiming-normal convs (fan_out, relu), BatchNorm weight 1,
    bias 0, fresh running statistics, no zero-init of the last BatchNorm (embedder.py:407-428).
    """
    from torchvision.models import resnet50

    with torch.device("meta"):
        trunk = resnet50(weights=None)
    del trunk.layer4, trunk.fc
    trunk.to_empty(device="cpu")
    for mod in trunk.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm2d):
            mod.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1, count 0
    if state is None:
        return trunk
    state = {k: v for k, v in state.items() if not k.startswith(("layer4.", "fc."))}
    try:
        missing, unexpected = trunk.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise AE2WeightsError(f"{source} is not a torchvision ResNet-50 state dict: "
                              f"{str(e).splitlines()[-1].strip()}") from e
    # old checkpoints (e.g. resnet50-19c8e357.pth) predate BatchNorm's num_batches_tracked
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise AE2WeightsError(f"{source} is not a torchvision ResNet-50 state dict: missing keys "
                              f"{missing[:5]}, unexpected keys {unexpected[:5]}")
    return trunk


class AE2Embedder(nn.Module):
    """AE2's Embedder. forward(frames (B, 2T, 3, H, W) in [-1, 1]) -> (B, T, embedding_size).

    Args:
        embedding_size: output width (released default 128).
        input_size: H = W of the frames (released: 224; 168 also used). Sets the max-pool kernel
            to the trunk's output size (14 at 224, 11 at 168).
        num_context_steps: frames per step (the released sampler always loads 2).
        freeze_base: trunk without gradients and kept in eval mode (see the module docstring).
        released_grouping: see the module docstring (True = released view).
        pretrained: load torchvision's ImageNet ResNet-50 (V1) into the trunk; False keeps the
            released random init (see _resnet50_trunk; PyTorch defaults for the head), for
            tests or for loading a checkpoint afterwards.
        weights_path: a .pth file for the trunk ("" = torchvision's cache).
    Raises:
        WeightsNotFoundError: pretrained and the weights are not available locally.
        AE2WeightsError: the weights file is not a ResNet-50 state dict.
    """

    def __init__(self, embedding_size: int = 128, input_size: int = 224,
                 num_context_steps: int = 2, freeze_base: bool = False,
                 released_grouping: bool = True, pretrained: bool = True,
                 weights_path: str = ""):
        super().__init__()
        self.num_context_steps = num_context_steps
        self.released_grouping = released_grouping
        self.freeze_base = freeze_base
        self.input_size = input_size
        self.weights_source = "random-init"
        state = None
        if pretrained:  # read first: a missing file fails before any network is built
            state, self.weights_source = load_imagenet_trunk_state(weights_path)
        self.trunk = _resnet50_trunk(state, self.weights_source)
        self.ksize = _halve(input_size, 4)  # conv1, maxpool, layer2, layer3 each halve
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Sequential(
            nn.Conv3d(TRUNK_CHANNELS, HEAD_CHANNELS, kernel_size=3, padding=1),
            nn.BatchNorm3d(HEAD_CHANNELS), nn.ReLU(),
            nn.Conv3d(HEAD_CHANNELS, HEAD_CHANNELS, kernel_size=3, padding=1),
            nn.BatchNorm3d(HEAD_CHANNELS), nn.ReLU())
        self.pool = nn.MaxPool3d((num_context_steps, self.ksize, self.ksize))
        self.fc = nn.Sequential(
            nn.Dropout(DROPOUT), nn.Linear(HEAD_CHANNELS, HEAD_CHANNELS), nn.ReLU(),
            nn.Dropout(DROPOUT), nn.Linear(HEAD_CHANNELS, HEAD_CHANNELS), nn.ReLU())
        self.embedding = nn.Linear(HEAD_CHANNELS, embedding_size)
        if freeze_base:
            self.trunk.requires_grad_(False)
            self.trunk.eval()

    def train(self, mode: bool = True) -> "AE2Embedder":
        super().train(mode)
        if self.freeze_base:
            self.trunk.eval()
        return self

    def trunk_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) -> layer3 maps (n, 1024, h, w)."""
        t = self.trunk
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_base):
            x = t.maxpool(t.relu(t.bn1(t.conv1(frames))))
            return t.layer3(t.layer2(t.layer1(x)))

    def group(self, feats: torch.Tensor) -> torch.Tensor:
        """Trunk maps (B*ctx*T, c, h, w) -> clips (B*T, c, ctx, h, w) (see released_grouping)."""
        n, c, h, w = feats.shape
        ctx = self.num_context_steps
        if self.released_grouping:
            return feats.contiguous().view(-1, c, ctx, h, w)
        return feats.view(n // ctx, ctx, c, h, w).transpose(1, 2)

    def pool_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Trunk maps (B*ctx*T, 1024, h, w) -> max-pooled head features (B*T, 256): dropout,
        grouping, two Conv3d-BN-ReLU blocks, MaxPool3d((ctx, k, k)) (embedder.py:100-104)."""
        return self.pool(self.head(self.dropout(self.group(feats)))).flatten(1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, ctx*T, 3, H, W) in [-1, 1] -> embeddings (B, T, embedding_size)."""
        if frames.dim() != 5 or frames.shape[2] != 3 or frames.shape[1] % self.num_context_steps:
            raise ValueError(f"frames must be (B, {self.num_context_steps}*T, 3, H, W); got "
                             f"{tuple(frames.shape)}")
        if frames.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"this embedder was built for {self.input_size}x{self.input_size} "
                             f"frames; got {tuple(frames.shape[-2:])}")
        feats = self.trunk_features(frames.reshape(-1, *frames.shape[2:]))
        x = self.pool_features(feats).reshape(frames.shape[0], -1, HEAD_CHANNELS)
        return self.embedding(self.fc(x))

    def load_released_state_dict(self, sd: dict, strict: bool = True):
        """Load a released Embedder state dict (released key names, see
        convert_released_state_dict)."""
        return self.load_state_dict(convert_released_state_dict(sd), strict=strict)


def iter_video_embeddings(model: AE2Embedder, frames, frame_stride: int = 15,
                          chunk_size: int = 64, num_frames: int | None = None
                          ) -> Iterator[torch.Tensor]:
    """Yield (<= chunk_size, D) embeddings of consecutive frames of one video (see embed_video).

    frames: (L, 3, H, W) frames, or a callable `load(indices)` -> (len(indices), 3, H, W) with
    `num_frames` = L, so a long video is read chunk by chunk instead of held whole.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    if model.num_context_steps != 2:
        raise ValueError("embed_video pairs each frame with one context frame; the model has "
                         f"num_context_steps = {model.num_context_steps}")
    load = frames if callable(frames) else frames.__getitem__
    n = num_frames if callable(frames) else frames.shape[0]
    device = next(model.parameters()).device
    for start in range(0, n, chunk_size):
        idx = torch.arange(start, min(start + chunk_size, n))
        ctx = (idx - frame_stride).clamp(min=0)
        pairs = torch.stack([ctx, idx], dim=1).reshape(-1)  # (context_f, f) per frame
        yield model(load(pairs).unsqueeze(0).to(device))[0]


def embed_video(model: AE2Embedder, frames: torch.Tensor, frame_stride: int = 15,
                chunk_size: int = 64) -> torch.Tensor:
    """Per-frame embeddings (L, D) of a whole video, as the released evaluation computes them.

    Frame f is paired with context frame max(0, f - frame_stride) (video_align_dataset.py:202-205)
    and the model runs with batch size 1 on chunk_size pairs at a time
    (evaluation/evaluate_features.py:41-48), in eval mode and without gradients (the model's
    mode is restored afterwards).

    Args:
        frames: (L, 3, H, W) float frames in [-1, 1] (any device; chunks move to the model's).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat(list(iter_video_embeddings(model, frames, frame_stride, chunk_size)))
    finally:
        model.train(was_training)

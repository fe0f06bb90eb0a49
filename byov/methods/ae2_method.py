"""AE2's alignment objectives as training methods: AE2's ResNet-50 embedder, sampler and losses.

The released AE2 training (github zihuixue/AlignEgoExo): each item is a pair of clips drawn from
the merged ego+exo pool; a clip is T main steps, each loaded with its context frame
(s - frame_stride), frames resized from the 256x256 BGR h5 cache with INTER_AREA and scaled to
[-1, 1] without ImageNet normalisation (dataset/video_align_dataset.py:81-123). Both views go
through the embedder in separate calls (video_tasks.py:31-33), then the objective
(`byov.ae2.losses.alignment_loss`) gives (loss, loss2). Evaluation embeds every frame with its
context frame max(0, f - frame_stride) (video_align_dataset.py:202-205).

dtw_contrastive's positive steps: drawn weighted by the per-step mean detection confidence of
`<dataset>/det_bounding_box.pickle` when the dataset has one (released, `--sample_by_bbox`);
without it, the released centres rule int((i + 0.5) * (T // S)) (video_align_dataset_bbox.py:
96-107). Keys of that file are `<view>_<video name>`, values (L, objects, 10) with the confidence
in column 4. The object-centric encoder that uses the boxes (RoIPosEmbedder) is not implemented.
"""
from __future__ import annotations

import os
import pickle
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from byov.data.datasets import FrameSource
from byov.data.frame_cache import read_frames
from byov.data.layout import DataError, dataset_path
from byov.data.sampling import PAIRINGS, draw_pair
from byov.methods.base import Method

BBOX_FILE = "det_bounding_box.pickle"


class AE2FrameSource(FrameSource):
    """Frames of a video for AE2's embedder: (n, 3, S, S) float32 in [-1, 1], BGR as released.

    The h5 frame cache is found (and built on first use) as `FrameSource` does; only the
    preprocessing differs: INTER_AREA to S, BGR kept, `uint8 / 127.5 - 1` computed in float64
    and cast to float32, as the released dataset does (video_align_dataset.py:81-98).
    """

    def __init__(self, dataset_root: str, dataset: str, input_size: int,
                 frame_cache_dir: str = ""):
        # the backbone name only satisfies FrameSource's check; `load` below replaces its
        # preprocessing
        super().__init__(dataset_root, dataset, "resnet50", input_size, frame_cache_dir)
        self.kind = "pixels"

    def load(self, video, indices) -> torch.Tensor:
        frames = read_frames(self.cache_path(video), np.asarray(indices, dtype=np.int64))
        size = (self.input_size, self.input_size)
        out = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        out = (out / 127.5 - 1.0).astype(np.float32)
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def load_bbox_confidences(dataset_root: str, dataset: str) -> dict | None:
    """{"<view>_<name>": (L,) mean detection confidence per frame}, or None without the file.

    Raises DataError: the file exists but is not the released dict of (L, objects, >=5) arrays.
    """
    path = os.path.join(dataset_path(dataset_root, dataset), BBOX_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            boxes = pickle.load(f)
        return {k: np.asarray(v, dtype=np.float64)[:, :, 4].mean(axis=-1)
                for k, v in boxes.items()}
    except Exception as e:  # a damaged pickle, or arrays of another shape
        raise DataError(f"{path} could not be read as AE2's detections (a dict of (frames, "
                        f"objects, 10) arrays keyed by '<view>_<video>': {type(e).__name__}: "
                        f"{e}); fix or remove the file (without it, the centres rule is used)"
                        ) from e


class AE2PairDataset(Dataset):
    """AE2's training items. Item i of epoch e is a pure function of (seed, e, i).

    Returns a dict: inputs (2, 2T, 3, S, S) float32 frames ordered (context_1, step_1, ...),
    steps (2, T) int64 main-frame indices, seq_lens (2,) int64 video lengths, pos_steps (2, S)
    int64 positive steps (dtw_contrastive; zeros of width 0 otherwise).
    """

    def __init__(self, videos: Sequence, num_frames: int, source, pairing: str = "merged",
                 seed: int = 0, length: int | None = None, frame_stride: int = 15,
                 random_offset: int = 1, num_positives: int = 0,
                 confidences: Mapping[str, np.ndarray] | None = None):
        if pairing not in PAIRINGS:
            raise ValueError(f"unknown pairing {pairing!r}; valid: {', '.join(PAIRINGS)}")
        self.videos, self.num_frames, self.source = list(videos), int(num_frames), source
        self.pairing, self.seed = pairing, int(seed)
        self.length = int(length) if length is not None else len(self.videos)
        self.frame_stride, self.random_offset = int(frame_stride), int(random_offset)
        self.num_positives, self.confidences = int(num_positives), confidences
        self.epoch = 0
        if confidences is not None:  # every training video needs its detections: check now
            missing = [v.path for v in self.videos if self._bbox_key(v) not in confidences]
            if missing:
                raise DataError(f"{BBOX_FILE} has no detections for {len(missing)} videos "
                                f"(first: {missing[0]}, key '{self._bbox_key(self.videos[0])}'"
                                f"); complete it or remove it to use the centres rule")

    @staticmethod
    def _bbox_key(video) -> str:
        return f"{video.view}_{video.name}"

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        from byov.ae2.sampling import positive_steps, sample_clip

        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        frames, steps, lens, pos = [], [], [], []
        for k in draw_pair(self.videos, self.pairing, rng):
            video = self.videos[k]
            main, load = sample_clip(video.num_frames, self.num_frames, rng, self.frame_stride,
                                     self.random_offset)
            frames.append(self.source.load(video, load.numpy()))
            steps.append(main)
            lens.append(video.num_frames)
            if self.num_positives:
                conf = None
                if self.confidences is not None:
                    conf = self.confidences[self._bbox_key(video)][:video.num_frames][main.numpy()]
                pos.append(positive_steps(self.num_frames, self.num_positives, conf, rng))
        return {"inputs": torch.stack(frames), "steps": torch.stack(steps),
                "seq_lens": torch.tensor(lens, dtype=torch.int64),
                "pos_steps": (torch.stack(pos) if pos else torch.zeros(2, 0, dtype=torch.int64))}


class AE2Method(Method):
    """One of AE2's objectives on AE2's embedder.

    Args:
        objective: tcc, dtw, dtw_consistency, dtw_contrastive or vava.
        embedder: `byov.ae2.embedder.AE2Embedder`.
        source: `AE2FrameSource`.
        loss_settings: keywords of `byov.ae2.losses.alignment_loss` (scale_factor, tcc_temp,
            dtw_ratio, dtw_beta, cyclic and the quirk switches dtw_l2_normalize, tcc_symmetric,
            vava_released_inter).
        step_prior: vava's prior weight follows the global step (the released plain-embedder
            task passed step 0 to vava; its bbox task passed the step).
        num_frames, pairing, frame_stride, random_offset, num_positives, confidences: sampler.
    """

    def __init__(self, objective: str, embedder: nn.Module, source, loss_settings: Mapping, *,
                 num_frames: int, pairing: str = "merged", frame_stride: int = 15,
                 random_offset: int = 1, num_positives: int = 0, confidences=None,
                 chunk_size: int = 64, step_prior: bool = False):
        super().__init__()
        self.step_prior = step_prior
        self.name = objective
        self.loss_keys = ("loss", "hinge") if objective == "dtw_contrastive" else ("loss",)
        self.embedder, self.source = embedder, source
        self.loss_settings = dict(loss_settings)
        self.num_frames, self.pairing = int(num_frames), pairing
        self.frame_stride, self.random_offset = int(frame_stride), int(random_offset)
        self.num_positives, self.confidences = int(num_positives), confidences
        self.chunk_size = int(chunk_size)
        self._step = 0

    def forward(self, batch: Mapping[str, torch.Tensor], entropy: Sequence[int]) -> dict:
        from byov.ae2.losses import alignment_loss

        x = batch["inputs"]  # (B, 2, 2T, 3, S, S)
        # the two views in separate calls, as released: BatchNorm statistics per view
        embeddings = torch.stack([self.embedder(x[:, 0]), self.embedder(x[:, 1])], dim=1)
        first_half = None
        if self.name == "dtw_contrastive" and self.loss_settings.get("cyclic"):
            g = torch.Generator().manual_seed(int(np.random.SeedSequence(list(entropy))
                                                  .generate_state(1)[0]))
            first_half = torch.rand(x.shape[0], generator=g) < 0.5  # released: random() < 0.5
        global_step = 0  # released --task align: vava always saw step 0
        if self.step_prior:  # the prior weight follows the training step (entropy[2] in training)
            global_step = int(entropy[2]) if len(entropy) > 2 and entropy[1] == 0 else self._step
        loss, loss2 = alignment_loss(
            self.name, embeddings.float(), batch["steps"], batch["seq_lens"],
            batch["pos_steps"] if self.name == "dtw_contrastive" else None, global_step,
            first_half=first_half, **self.loss_settings)
        out = {"loss": loss}
        if self.name == "dtw_contrastive":
            out["hinge"] = loss2
        return out

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.embedder.parameters() if p.requires_grad]

    def after_optimizer_step(self, step: int) -> dict:
        self._step = step + 1
        return {}

    def pair_dataset(self, videos: Sequence, seed: int, length: int):
        return AE2PairDataset(videos, self.num_frames, self.source, self.pairing, seed, length,
                              self.frame_stride, self.random_offset,
                              self.num_positives if self.name == "dtw_contrastive" else 0,
                              self.confidences)

    def state_entries(self) -> dict[str, dict]:
        return {"encoder": self.embedder.state_dict()}

    def load_state_entries(self, ckpt: Mapping, where: str = "checkpoint") -> None:
        from byov.checkpoint import CheckpointError, load_state_strict

        if ckpt.get("encoder") is None:
            raise CheckpointError(f"{where} has no 'encoder' entry (the AE2 embedder)")
        load_state_strict(self.embedder, ckpt["encoder"], "encoder", where)

    @torch.no_grad()
    def embed_video(self, video, weights: str = "online") -> torch.Tensor:
        """(L, D): frame f with its context frame max(0, f - frame_stride), batch size 1, as the
        released evaluation; frames are read chunk by chunk, so memory stays bounded."""
        from byov.ae2.embedder import iter_video_embeddings

        if weights != "online":
            raise ValueError(f"AE2 methods have no EMA teacher; weights must be 'online', got "
                             f"{weights!r}")
        was_training = self.embedder.training
        self.embedder.eval()
        try:
            rows = iter_video_embeddings(
                self.embedder, lambda idx: self.source.load(video, idx.numpy()),
                self.frame_stride, self.chunk_size, num_frames=video.num_frames)
            return torch.cat([r.float().cpu() for r in rows])
        finally:
            self.embedder.train(was_training)


def build_ae2_method(spec, pretrained: bool = True) -> AE2Method:
    """AE2Method for a `byov.spec.MethodSpec` whose `name` is one of AE2's objectives."""
    from byov.ae2.embedder import AE2Embedder
    from byov.ae2.losses import is_cyclic

    ae2, data, encoder = spec.ae2, spec.data, spec.encoder
    cyclic = {"auto": is_cyclic(data.dataset), "on": True, "off": False}[ae2.cyclic]
    embedder = AE2Embedder(embedding_size=ae2.embedding_size, input_size=encoder.input_size,
                           freeze_base=encoder.freeze, released_grouping=ae2.released_grouping,
                           pretrained=pretrained, weights_path=encoder.weights)
    source = AE2FrameSource(data.root, data.dataset, encoder.input_size, data.frame_cache_dir)
    confidences = None
    if spec.name == "dtw_contrastive":
        confidences = load_bbox_confidences(data.root, data.dataset)
    return AE2Method(spec.name, embedder, source, {**ae2.loss, "cyclic": cyclic},
                     num_frames=spec.num_frames, pairing=spec.pairing,
                     frame_stride=ae2.frame_stride, random_offset=ae2.random_offset,
                     num_positives=ae2.num_positives, confidences=confidences,
                     chunk_size=spec.chunk_size, step_prior=ae2.step_prior)

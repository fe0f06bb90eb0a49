"""Evaluation folders are reused only under the same content key, and one made by another model
is replaced with a word, never silently (two export folders of the same name, a new checkpoint
at the same path, edited data)."""
import os
from types import SimpleNamespace

import numpy as np
import torch

from byov.downstream.embed import embed_to_folder, embedding_key

VIDEOS = {"train": [SimpleNamespace(name="a", view="ego", num_frames=3, path="a.mp4")],
          "test": [SimpleNamespace(name="b", view="exo", num_frames=2, path="b.mp4")]}
LABELS = {"a": np.array([0, 1, 1]), "b": np.array([0, 1])}


def _constant(value):
    """make_embed for a model whose every embedding is `value`."""
    return lambda: (lambda v: torch.full((v.num_frames, 2), float(value)))


def test_a_folder_of_another_model_is_replaced_and_said(tmp_path, capsys):
    out = str(tmp_path / "eval" / "export")
    first = embedding_key({"backbone": "clip"}, "checkpoint", "data-1", "ckpt-1", "online")
    other = embedding_key({"backbone": "clip"}, "checkpoint", "data-1", "ckpt-2", "online")
    splits = ("train", "test")
    assert embed_to_folder(out, splits, first, _constant(1), VIDEOS, LABELS, progress=False)
    # the same model again: reused, nothing embedded, nothing said
    assert not embed_to_folder(out, splits, first, _constant(9), VIDEOS, LABELS, progress=False)
    assert np.load(os.path.join(out, "test_embeds.npy")).max() == 1
    assert "holds embeddings" not in capsys.readouterr().out
    # another checkpoint into the same folder: embedded, and the replacement is said
    assert embed_to_folder(out, splits, other, _constant(2), VIDEOS, LABELS, progress=False)
    said = capsys.readouterr().out
    assert f"{out} holds embeddings made with a different checkpoint: they are replaced" in said
    assert np.load(os.path.join(out, "test_embeds.npy")).max() == 2
    # other data under the same checkpoint: said as such
    edited = embedding_key({"backbone": "clip"}, "checkpoint", "data-2", "ckpt-2", "online")
    assert embed_to_folder(out, splits, edited, _constant(3), VIDEOS, LABELS, progress=False)
    assert "a different data version: they are replaced" in capsys.readouterr().out


def test_an_interrupted_rewrite_is_never_reused_as_the_old_model(tmp_path):
    """Re-embedding a folder with another model and stopping half-way (Ctrl-C, a full disk)
    must not leave new files under the old key: the old model's next call re-embeds."""
    out = str(tmp_path / "eval")
    first = embedding_key({"backbone": "clip"}, "checkpoint", "data-1", "ckpt-1", "online")
    other = embedding_key({"backbone": "clip"}, "checkpoint", "data-1", "ckpt-2", "online")
    splits = ("train", "test")
    assert embed_to_folder(out, splits, first, _constant(1), VIDEOS, LABELS, progress=False)

    def stops_at_the_second_split():
        def embed(v):
            if v.name == "b":
                raise KeyboardInterrupt
            return torch.full((v.num_frames, 2), 2.0)
        return embed

    try:
        embed_to_folder(out, splits, other, stops_at_the_second_split, VIDEOS, LABELS,
                        progress=False)
    except KeyboardInterrupt:
        pass
    assert np.load(os.path.join(out, "train_embeds.npy")).max() == 2  # the half-done rewrite
    # the old model's test split went with its key: no folder mixing two models' splits
    assert not os.path.exists(os.path.join(out, "test_embeds.npy"))
    # the first model again: its key is gone with the rewrite, so it embeds anew
    assert embed_to_folder(out, splits, first, _constant(1), VIDEOS, LABELS, progress=False)
    assert np.load(os.path.join(out, "train_embeds.npy")).max() == 1

"""One rule per fact: a dataset the data layer accepts (an ego and an exo video with the same
file name in every split) runs through validation, training (with val evaluation), evaluation
from the checkpoint and from the saved embeddings, and the report."""
import os
import pickle
import shutil

import pytest

from byov.data.validate import load_validated
from train_helpers import load_ckpt, train_args, train_in_process

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def same_names(synthetic_root, tmp_path_factory):
    """A copy of the session dataset where, in each split, the exo video is a copy of the ego
    video ego_<split>_000.mp4 under the same name (one shared label.pickle entry)."""
    root = tmp_path_factory.mktemp("same_names")
    data = root / "synthetic"
    shutil.copytree(synthetic_root, data)
    labels_path = data / "label.pickle"
    labels = pickle.loads(labels_path.read_bytes())
    for split in SPLITS:
        name = f"ego_{split}_000.mp4"
        shutil.copyfile(data / "ego" / name, data / "exo" / name)
        csv = data / "exo" / f"{split}.csv"
        csv.write_text(csv.read_text().replace(f"exo_{split}_000.mp4", name))
        os.remove(data / "exo" / f"exo_{split}_000.mp4")
        labels.pop(f"exo_{split}_000")
    labels_path.write_bytes(pickle.dumps(labels))
    return str(root)


def test_accepted_same_name_dataset_runs_through_every_stage(same_names, tiny_clip_dir,
                                                             tmp_path):
    import evaluate
    from byov.report import build_report

    # validation: accepted
    videos, _ = load_validated(same_names, "synthetic", SPLITS, None)
    for split in SPLITS:
        names = {(v.view, v.name) for v in videos[split]}
        assert ("ego", f"ego_{split}_000") in names and ("exo", f"ego_{split}_000") in names
    # training, with the downstream evaluation on val each epoch
    run = str(tmp_path / "run")
    cache = str(tmp_path / "frame_cache")
    common = {"dataset_root": same_names, "frame_cache_dir": cache}
    argv = train_args(os.path.join(same_names, "synthetic"), tiny_clip_dir, run, cache,
                      epochs=1, ds_every_n_epoch=1, best_metric="kendalls_tau")
    train_in_process(argv)
    assert "kendalls_tau" in load_ckpt(run)["val_metrics"]
    assert os.path.isfile(os.path.join(run, "eval", "epoch_0000", "metrics.json"))
    # evaluation from the checkpoint (test split), then from the embeddings it saved
    ckpt = os.path.join(run, "checkpoints", "last.pth")
    embed_dir = str(tmp_path / "emb")
    from_ckpt = evaluate.main(["--ckpt", ckpt, "--embed_dir", embed_dir,
                               "--dataset_root", common["dataset_root"],
                               "--frame_cache_dir", cache])
    from_embeddings = evaluate.main(["--embeddings", embed_dir])
    for key in ("classification_f1", "retrieval_map10", "progression_r2", "kendalls_tau"):
        assert from_embeddings[key] == from_ckpt[key], key
    # the report
    res = build_report(run, "last", "test", overrides=common, baselines=False, max_points=100)
    assert os.path.isfile(res.index)


def test_the_same_view_and_name_twice_is_still_refused():
    import numpy as np

    from byov.eval import SplitData
    from byov.eval.io import EvalInputError

    ok = [{"name": "a", "view": "ego", "num_frames": 2}, {"name": "a", "view": "exo",
                                                         "num_frames": 2}]
    SplitData(np.zeros((4, 2), np.float32), np.zeros(4, np.int64), ok, "test").validate()
    twice = [ok[0], dict(ok[0])]
    with pytest.raises(EvalInputError, match="the ego video 'a' appears twice"):
        SplitData(np.zeros((4, 2), np.float32), np.zeros(4, np.int64), twice, "test").validate()

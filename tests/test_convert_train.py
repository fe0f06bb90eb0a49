"""A converted dataset trains with train.py and evaluates with evaluate.py, both unchanged; its
phases repeat in one test video, so progression and Kendall's tau are n/a with the reason while
classification and retrieval are scored."""
import json
import os

from byov.data.convert.__main__ import main
from convert_helpers import write_video
from train_helpers import train_args, train_in_process


def test_a_converted_dataset_trains_and_evaluates(tmp_path, tiny_clip_dir):
    src = tmp_path / "src"
    rows = ["video,view,split,start_s,end_s,phase"]
    for split, n in (("train", 2), ("val", 1), ("test", 2)):
        for view in ("ego", "exo"):
            for k in range(n):
                video = f"{split}/{view}{k}.mp4"
                write_video(src / video, 16, 30, seed=k + (view == "exo"), size=32)
                steps = ([(0.0, 0.2, "open"), (0.2, 0.35, "pour"), (0.35, 0.5, "close")]
                         if (split, view, k) != ("test", "ego", 1) else
                         [(0.0, 0.2, "open"), (0.2, 0.35, "close"), (0.35, 0.5, "open")])
                rows += [f"{video},{view},{split},{a},{b},{p}" for a, b, p in steps]
    (tmp_path / "seg.csv").write_text("\n".join(rows) + "\n")
    data = tmp_path / "data"
    assert main(["segments", "--annotations", str(tmp_path / "seg.csv"), "--videos", str(src),
                 "--out", str(data / "pouring")]) == 0

    run = str(tmp_path / "run")
    # in this process (as tests/test_methods.py does): the entry scripts' own main()
    train_in_process(train_args(str(data / "pouring"), tiny_clip_dir, run,
                                str(tmp_path / "frames"), dataset="pouring"))
    ckpt = os.path.join(run, "checkpoints", "last.pth")
    assert os.path.isfile(ckpt)

    import evaluate

    out = str(tmp_path / "metrics.json")
    evaluate.main(["--ckpt", ckpt, "--eval_mode", "test", "--json", out])
    metrics = json.load(open(out))
    assert isinstance(metrics["classification_f1"]["regular"], float)
    assert isinstance(metrics["retrieval_map10"]["regular"], float)
    assert metrics["progression_r2"] is None and metrics["kendalls_tau"] is None
    notes = " ".join(metrics["notes"])
    assert ("kendalls_tau: n/a, phases repeat or re-order in 1 of 4 'test' videos (e.g. "
            "'test_ego1': phase 0 repeats after phase 2)") in notes
    assert "progression_r2: n/a, phases repeat or re-order in 1 of 4 'test' videos" in notes

"""The converters' one set of rules (byov/data/convert/segments.py) and safe output
(writer.py), through the plain `segments` csv every format reduces to: seconds -> frames at
each video's container fps (29.97 vs 30), -1 gaps, the one-frame clamp at a video's end,
refused overlaps, --skip_bad, trimming, resume after a kill, foreign output refused."""
import json
import os
import pickle
from fractions import Fraction

import numpy as np
import pytest

from byov.data.convert import ConvertError, Options, Segment, VideoEntry
from byov.data.convert import video_io, writer
from byov.data.convert.__main__ import main
from byov.data.convert.segments import frame_ranges
from byov.data.layout import DataError, dataset_path, frame_count, load_labels
from byov.data.video import decode_frames
from byov.data.validate import load_validated
from convert_helpers import NTSC, tree_state, write_video

N = 12  # frames per source video
# (start_s, end_s, phase): a 0.05 s background gap between b and c
SEGMENTS = [(0.0, 0.1, "a"), (0.1, 0.25, "b"), (0.3, 0.41, "c")]
# frame ranges those give, by hand: round(t * fps) half up, end exclusive
AT_NTSC = [0, 0, 0, 1, 1, 1, 1, -1, -1, 2, 2, 2]  # 2.997->3, 7.49->7, 8.99->9, 12.29->12
AT_30 = [0, 0, 0, 1, 1, 1, 1, 1, -1, 2, 2, 2]  # 3, 7.5->8, 9, 12.3->12


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """2 videos per split and view: ego at 29.97 fps, exo at 30 fps; returns the folder."""
    src = tmp_path_factory.mktemp("sources")
    for split in ("train", "val", "test"):
        for view in ("ego", "exo"):
            for k in range(2):
                write_video(src / f"{split}{k}" / f"{view}.mp4", N, NTSC if view == "ego" else 30,
                            seed=k)
    return str(src)


def write_csv(path, sources, overrides=None, extra=()):
    """The segments csv of every source; overrides: {video: [(start, end, phase), ...]}."""
    rows = ["video,view,split,start_s,end_s,phase"]
    for split in ("train", "val", "test"):
        for view in ("ego", "exo"):
            for k in range(2):
                video = f"{split}{k}/{view}.mp4"
                for a, b, p in (overrides or {}).get(video, SEGMENTS):
                    rows.append(f"{video},{view},{split},{a},{b},{p}")
    rows += list(extra)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    return str(path)


def run(tmp_path, sources, *extra, csv=None, out="out/mine"):
    csv = csv or write_csv(tmp_path / "seg.csv", sources)
    return main(["segments", "--annotations", csv, "--videos", sources,
                 "--out", str(tmp_path / out), *extra])


def labels_of(out):
    with open(os.path.join(out, "label.pickle"), "rb") as f:
        return pickle.load(f)


def test_seconds_become_frames_at_each_videos_own_fps(tmp_path, sources, capsys):
    before = tree_state(sources)
    assert run(tmp_path, sources) == 0
    out = str(tmp_path / "out" / "mine")
    labels = labels_of(out)
    assert labels["train0_ego"].tolist() == AT_NTSC  # 29.97 fps
    assert labels["train0_exo"].tolist() == AT_30  # 30 fps
    phases = json.load(open(os.path.join(out, "phases.json")))["phases"]
    assert [(p["id"], p["name"]) for p in phases] == [(0, "a"), (1, "b"), (2, "c")]
    # the data layer accepts it as dataset "mine" under the parent folder
    videos, checked = load_validated(str(tmp_path / "out"), "mine", ("train", "val", "test"),
                                     frame_cache_dir=None)
    assert {v.name for v in videos["test"]} == {"test0_ego", "test1_ego", "test0_exo",
                                                "test1_exo"}
    printed = capsys.readouterr().out
    assert "fps found: 29.97 (30000/1001) x6, 30 x6" in printed
    assert "train 2/2, val 2/2, test 2/2" in printed
    summary = json.load(open(os.path.join(out, "convert_summary.json")))
    want = (AT_NTSC.count(-1) + AT_30.count(-1)) / (2 * N)
    assert summary["background_fraction"] == pytest.approx(want)
    assert summary["video_files"] == {"linked": 12}
    assert os.path.samefile(os.path.join(out, "ego", "train0_ego.mp4"),
                            os.path.join(sources, "train0", "ego.mp4"))
    assert tree_state(sources) == before  # sources untouched


def test_a_segment_ending_within_one_frame_past_the_end_is_clamped(tmp_path, sources, capsys):
    # 12 frames at 30 fps end at 0.4 s; 0.43 s is within one frame period (0.0333 s) past it
    csv = write_csv(tmp_path / "seg.csv", sources,
                    {"val0/exo.mp4": [(0.0, 0.2, "a"), (0.2, 0.43, "b")]})
    assert run(tmp_path, sources, csv=csv) == 0
    assert labels_of(str(tmp_path / "out" / "mine"))["val0_exo"].tolist() == [0] * 6 + [1] * 6
    assert "segments clamped at a video end: 1" in capsys.readouterr().out


def test_a_segment_ending_further_past_the_end_is_refused_naming_the_line(tmp_path, sources,
                                                                          capsys):
    csv = write_csv(tmp_path / "seg.csv", sources,
                    {"val0/exo.mp4": [(0.0, 0.2, "a"), (0.2, 0.5, "b")]})
    assert run(tmp_path, sources, csv=csv) == 2
    err = capsys.readouterr().err
    assert f"{csv}, line" in err and "ends at 0.5 s" in err and "12 frames at 30.000 fps" in err
    assert "--skip_bad" in err
    assert not os.path.exists(tmp_path / "out")  # refused before writing anything


def test_overlapping_segments_are_refused_or_skipped_and_reported(tmp_path, sources, capsys):
    bad = {"train1/ego.mp4": [(0.0, 0.2, "a"), (0.15, 0.3, "b")]}
    csv = write_csv(tmp_path / "seg.csv", sources, bad)
    assert run(tmp_path, sources, csv=csv) == 2
    err = capsys.readouterr().err
    assert "overlaps" in err and err.count(f"{csv}, line") == 2 and "'train1_ego'" in err
    assert run(tmp_path, sources, "--skip_bad", csv=csv) == 0
    out = str(tmp_path / "out" / "mine")
    assert "train1_ego" not in labels_of(out)
    printed = capsys.readouterr().out
    assert "SKIPPED 1 videos (--skip_bad): train1_ego:" in printed and "overlaps" in printed
    assert open(os.path.join(out, "ego", "train.csv")).read() == "train0_ego.mp4\n"


def test_rule_units_back_to_back_segments_share_no_frame_and_short_ones_are_counted():
    entry = VideoEntry("v", "ego", "train", "v.mp4", [
        Segment(0.0, 1 / 3, "a", "l1"), Segment(1 / 3, 0.34, "b", "l2"),
        Segment(0.34, 0.5, "c", "l3")])
    f = frame_ranges(entry, Fraction(30), 30)
    assert f.ranges == [(0, 10, "a"), (10, 15, "c")] and f.empty == 1  # b: 0.2 frames
    with pytest.raises(ConvertError, match="starts at -0.1 s"):
        frame_ranges(VideoEntry("v", "ego", "train", "v.mp4", [Segment(-0.1, 0.2, "a", "l")]),
                     Fraction(30), 30)
    f = frame_ranges(VideoEntry("v", "ego", "train", "v.mp4", [Segment(-0.02, 0.2, "a", "l")]),
                     Fraction(30), 30)
    assert f.ranges == [(0, 6, "a")] and f.clamped == 1


def test_trim_to_the_labelled_span_re_encodes_frame_exactly(tmp_path, sources, capsys):
    csv = write_csv(tmp_path / "seg.csv", sources, {"test0/ego.mp4": [(0.1, 0.25, "b"),
                                                                      (0.3, 0.41, "c")]})
    assert run(tmp_path, sources, "--trim", "labelled", csv=csv) == 0
    out = str(tmp_path / "out" / "mine")
    labels = labels_of(out)
    # 29.97 fps: b = frames 3..6, c = 9..11 -> the trimmed video is frames 3..11
    assert labels["test0_ego"].tolist() == [1, 1, 1, 1, -1, -1, 2, 2, 2]
    trimmed = os.path.join(out, "ego", "test0_ego.mp4")
    assert frame_count(trimmed) == 9
    # frame-exact: each output frame is nearest to source frame 3 + i (lossy, so nearest)
    src, got = decode_frames(os.path.join(sources, "test0", "ego.mp4")), decode_frames(trimmed)
    dist = np.abs(got[:, None].astype(int) - src[None].astype(int)).mean(axis=(2, 3, 4))
    assert dist.argmin(axis=1).tolist() == list(range(3, 12))
    # a video labelled from its first to its last frame is not trimmed, so not re-encoded
    assert labels["test1_ego"].tolist() == AT_NTSC
    assert "video files: encoded 1, linked 11 (trim: labelled" in capsys.readouterr().out


def test_foreign_or_different_output_is_refused_untouched(tmp_path, sources, capsys):
    foreign = tmp_path / "out" / "mine"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    assert run(tmp_path, sources) == 2
    assert "not empty and was not made by byov.data.convert" in capsys.readouterr().err
    assert os.listdir(foreign) == ["notes.txt"]
    assert run(tmp_path, sources, out="out/break_eggs") == 2  # would shadow AE2's dataset
    assert "a name byov reserves" in capsys.readouterr().err
    assert run(tmp_path, sources, out="out/other") == 0
    # the same folder, another plan (other options): refused, not mixed
    assert run(tmp_path, sources, "--trim", "labelled", out="out/other") == 2
    assert "was made by another conversion" in capsys.readouterr().err


def test_a_killed_conversion_resumes_without_redoing_finished_videos(tmp_path, sources,
                                                                     monkeypatch, capsys):
    real = video_io.link_or_copy
    calls = []

    def dies_on_the_fourth(source, dest, copy=False):
        calls.append(dest)
        if len(calls) == 4:  # killed mid-write: a partial file is left behind
            open(dest + video_io.PARTIAL, "wb").write(b"half a video")
            raise KeyboardInterrupt
        return real(source, dest, copy)

    monkeypatch.setattr(video_io, "link_or_copy", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, sources)
    out = tmp_path / "out" / "mine"
    assert not (out / "label.pickle").exists()  # nothing looks finished
    done = sorted(p for p in calls[:3])
    inodes = {p: os.stat(p).st_ino for p in done}
    monkeypatch.setattr(video_io, "link_or_copy", real)
    capsys.readouterr()
    assert run(tmp_path, sources) == 0
    printed = capsys.readouterr().out
    assert printed.count("] kept ") == 3 and "(resumed)" in printed
    assert "video files: kept 3, linked 9" in printed
    assert {p: os.stat(p).st_ino for p in done} == inodes
    assert not list(out.glob("*/*" + video_io.PARTIAL))
    assert labels_of(str(out))["train0_ego"].tolist() == AT_NTSC


def test_an_unreadable_source_is_named_or_skipped(tmp_path, sources, capsys):
    broken = tmp_path / "broken" / "val9" / "exo.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a video at all")
    extra = [f"{broken},exo,val,0.0,0.1,a"]
    csv = write_csv(tmp_path / "seg.csv", sources, extra=extra)
    assert run(tmp_path, sources, csv=csv) == 2
    assert f"cannot open source video {broken}" in capsys.readouterr().err
    assert run(tmp_path, sources, "--skip_bad", csv=csv) == 0
    assert "SKIPPED 1 videos (--skip_bad)" in capsys.readouterr().out


def test_a_dataset_of_ones_own_is_any_folder_name_but_not_a_path(tmp_path):
    with pytest.raises(DataError, match="is not a folder name"):
        dataset_path(str(tmp_path), "../elsewhere")
    with pytest.raises(DataError, match="none of the valid names: break_eggs"):
        load_labels(str(tmp_path), "my_datset")  # no such folder: the valid names are listed


def test_an_image_folder_needs_a_stated_fps_and_a_missing_source_is_named(tmp_path):
    entry = VideoEntry("v", "ego", "train", str(tmp_path))
    with pytest.raises(ConvertError, match="pass --fps"):
        video_io.probe(entry.source)
    with pytest.raises(ConvertError, match="nope.mp4 does not exist"):
        writer.convert([VideoEntry("v", "ego", "train", str(tmp_path / "nope.mp4"),
                                   where="x.csv, line 2")], str(tmp_path / "o"), "segments",
                       Options(), log=lambda s: None)


def test_the_command_line_lists_every_format():
    import subprocess
    import sys

    from conftest import ROOT

    p = subprocess.run([sys.executable, "-m", "byov.data.convert", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for fmt in ("segments", "egoexo4d-keystep", "cmu-mmac", "h2o", "assembly101",
                "egoexolearn"):
        assert fmt in p.stdout

"""Each converter reads small files written in its dataset's official schema (built here from
what the dataset's documentation shows; docs/datasets/<name>.md cites it) with tiny generated
videos, and writes an AE2 dataset `byov.data.validate` accepts, with the expected labels,
views and splits."""
import json
import os
import pickle

from byov.data.convert.__main__ import main
from byov.data.layout import frame_count
from byov.data.validate import load_validated
from convert_helpers import write_frame_folder, write_video

SPLITS = ("train", "val", "test")


def converted(out):
    """(label.pickle, phase names by id, {split: {view: sorted names}}) of a converted dataset,
    after checking it with the data layer."""
    videos, labels = load_validated(os.path.dirname(out), os.path.basename(out), SPLITS,
                                    frame_cache_dir=None)
    with open(os.path.join(out, "label.pickle"), "rb") as f:
        assert {k: v.tolist() for k, v in pickle.load(f).items()} == \
            {k: v.tolist() for k, v in labels.items()}
    phases = [p["name"] for p in json.load(open(os.path.join(out, "phases.json")))["phases"]]
    splits = {s: {v: sorted(x.name for x in videos[s] if x.view == v) for v in ("ego", "exo")}
              for s in SPLITS}
    return {k: v.tolist() for k, v in labels.items()}, phases, splits


# -- Ego-Exo4D keystep ------------------------------------------------------------------------

def _egoexo4d(root, takes_spec):
    """takes_spec: [(uid, name, scenario, split, segments [(start, end, step)]), ...]."""
    takes, ann = [], {"train": {}, "val": {}}
    for uid, name, scenario, split, segments in takes_spec:
        cams = {"aria01": {"rgb": {"relative_path": "frame_aligned_videos/aria01_214-1.mp4"},
                           "slam-left": {"relative_path":
                                         "frame_aligned_videos/aria01_1201-1.mp4"}},
                "cam01": {"0": {"relative_path": "frame_aligned_videos/cam01.mp4"}},
                "cam02": {"0": {"relative_path": "frame_aligned_videos/cam02.mp4"}}}
        for streams in cams.values():  # the Aria rgb stream and the exo cameras' stream 0
            rel = streams.get("rgb", streams.get("0"))["relative_path"]
            write_video(root / "takes" / name / rel, 12, 30, seed=len(takes))
        takes.append({"take_uid": uid, "take_name": name, "root_dir": f"takes/{name}",
                      "best_exo": "cam02", "task_name": f"{scenario} task",
                      "parent_task_name": scenario, "task_start_sec": 0.1,
                      "task_end_sec": 0.4, "duration_sec": 0.4, "frame_aligned_videos": cams})
        ann[split][uid] = {"take_uid": uid, "take_name": name, "scenario": scenario,
                           "annotation_metadata": {}, "segments": [
                               {"start_time": a, "end_time": b, "step_id": i,
                                "step_unique_id": 1000 + i, "step_name": step,
                                "step_description": step, "is_essential": True}
                               for i, (a, b, step) in enumerate(segments)]}
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        with open(root / "annotations" / f"keystep_{split}.json", "w") as f:
            json.dump({"annotations": ann[split], "taxonomy": {}, "vocabulary": {}}, f)
    with open(root / "takes.json", "w") as f:
        json.dump(takes, f)


ORDERED = [(0.0, 0.1, "crack egg"), (0.1, 0.2, "whisk"), (0.3, 0.4, "pour")]
REPEATED = [(0.0, 0.1, "crack egg"), (0.1, 0.2, "whisk"), (0.2, 0.3, "crack egg")]


def test_egoexo4d_keystep(tmp_path, capsys):
    src = tmp_path / "egoexo"
    _egoexo4d(src, [(f"uid{i}", f"upenn_0{i}", "Cooking", "train", ORDERED) for i in range(4)]
              + [("uid4", "upenn_04", "Cooking", "val", REPEATED),
                 ("uid5", "upenn_05", "Cooking", "val", ORDERED),
                 ("uid6", "bike_06", "Bike Repair", "train", ORDERED)])
    out = str(tmp_path / "data" / "cooking")
    assert main(["egoexo4d-keystep", "--annotations", str(src), "--videos", str(src),
                 "--scenario", "Cooking", "--test_fraction", "0.25", "--out", out]) == 0
    labels, phases, splits = converted(out)
    assert phases == ["crack egg", "whisk", "pour"]
    assert splits["val"] == {"ego": ["upenn_04_aria01", "upenn_05_aria01"],
                             "exo": ["upenn_04_cam02", "upenn_05_cam02"]}  # best_exo only
    assert len(splits["test"]["ego"]) == 1 and len(splits["train"]["ego"]) == 3
    assert not any(n.startswith("bike") for n in labels)  # another scenario
    ordered = [0, 0, 0, 1, 1, 1, -1, -1, -1, 2, 2, 2]
    assert labels["upenn_05_aria01"] == labels["upenn_05_cam02"] == ordered
    assert labels["upenn_04_cam02"] == [0, 0, 0, 1, 1, 1, 0, 0, 0, -1, -1, -1]
    assert "2 videos have phases that repeat or re-order" in capsys.readouterr().out
    # the same seed carves the same test take; every exo camera; cut to the task span
    again = str(tmp_path / "data" / "again")
    assert main(["egoexo4d-keystep", "--annotations", str(src), "--videos", str(src),
                 "--scenario", "Cooking", "--test_fraction", "0.25", "--exo", "all",
                 "--trim", "task", "--out", again]) == 0
    labels2, phases2, splits2 = converted(again)
    assert splits2["test"]["ego"] == splits["test"]["ego"]
    assert len(splits2["test"]["exo"]) == 2  # cam01 and cam02
    # task_start_sec 0.1 .. task_end_sec 0.4: frames 3..11 of each take, re-encoded
    named = [phases2[i] if i >= 0 else None for i in labels2["upenn_05_cam01"]]
    assert named == ["whisk"] * 3 + [None] * 3 + ["pour"] * 3
    assert frame_count(os.path.join(again, "exo", "upenn_05_cam01.mp4")) == 9


def test_egoexo4d_missing_take_is_named_or_skipped(tmp_path, capsys):
    src = tmp_path / "egoexo"
    _egoexo4d(src, [(f"uid{i}", f"t{i}", "Cooking", "train", ORDERED) for i in range(3)]
              + [("uid3", "t3", "Cooking", "val", ORDERED)])
    path = src / "annotations" / "keystep_train.json"
    data = json.load(open(path))
    data["annotations"]["ghost"] = {**data["annotations"]["uid0"], "take_uid": "ghost"}
    json.dump(data, open(path, "w"))
    cmd = ["egoexo4d-keystep", "--annotations", str(src), "--videos", str(src), "--scenario",
           "Cooking", "--test_fraction", "0.34", "--out", str(tmp_path / "out" / "c")]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert "keystep_train.json: annotations['ghost']" in err and "--skip_bad" in err
    assert main(cmd + ["--skip_bad"]) == 0
    assert "SKIPPED 1 videos (--skip_bad): t0: " in capsys.readouterr().out


# -- CMU-MMAC (EgoProceL csv) -----------------------------------------------------------------

def test_cmu_mmac(tmp_path):
    ann = tmp_path / "annotations" / "CMU-MMAC" / "Brownie"
    videos = tmp_path / "videos"
    for i, subject in enumerate(("S07", "S08", "S09", "S10")):
        for camera, ext in (("7150991", ".mp4"), ("8421130", ".avi" if i == 0 else ".mp4"),
                            ("6510211", ".mp4")):
            stem = f"{subject}_Brownie_{camera}-{1400 + i}"
            folder = ann / f"{subject}_Brownie_Video"
            folder.mkdir(parents=True, exist_ok=True)
            # three columns, no header; each camera has its own times
            shift = 0.1 if camera == "8421130" else 0.0
            (folder / f"{stem}.csv").write_text(
                f"{0.0 + shift},{0.1 + shift},Open brownie bag\n"
                f"{0.1 + shift},{0.2 + shift},Stir the mixture\n")
            write_video(videos / f"{stem}{ext}", 10, 30, seed=i,
                        codec="mpeg4" if ext == ".avi" else "libx264")
    out = str(tmp_path / "data" / "brownie")
    assert main(["cmu-mmac", "--annotations", str(tmp_path / "annotations" / "CMU-MMAC"),
                 "--videos", str(videos), "--recipe", "Brownie", "--exo_cameras", "8421130",
                 "--val_subjects", "S09", "--test_subjects", "S10", "--out", out]) == 0
    labels, phases, splits = converted(out)
    assert phases == ["Open brownie bag", "Stir the mixture"]
    assert splits["train"]["ego"] == ["S07_Brownie_7150991-1400", "S08_Brownie_7150991-1401"]
    assert splits["test"]["exo"] == ["S10_Brownie_8421130-1403"]  # 6510211 not selected
    assert labels["S08_Brownie_7150991-1401"] == [0, 0, 0, 1, 1, 1, -1, -1, -1, -1]
    assert labels["S08_Brownie_8421130-1401"] == [-1, -1, -1, 0, 0, 0, 1, 1, 1, -1]
    # the .avi source was re-encoded into an mp4 with its 10 frames
    assert frame_count(os.path.join(out, "exo", "S07_Brownie_8421130-1400.mp4")) == 10


# -- H2O ----------------------------------------------------------------------------------------

def test_h2o(tmp_path, capsys):
    root, lists = tmp_path / "h2o", tmp_path / "action_labels"
    lists.mkdir()
    header = "id path action_label start_act end_act start_frame end_frame\n"
    seqs = {"train": ["subject1/h1/0", "subject1/h1/1"], "val": ["subject3/k2/0"],
            "test": ["subject4/h1/0"]}
    rid = 0
    for split, names in seqs.items():
        rows = []
        for seq in names:
            for cam in (0, 4):
                write_frame_folder(root / seq / f"cam{cam}" / "rgb", 10, seed=cam)
            # frames 1..3 grab milk, 4..6 pour milk (end frames included), 9 is the last frame
            for action, a, b in ((5, 1, 3), (23, 4, 6), (13, 8, 9)):
                rid += 1
                rows.append(f"{rid} {seq} {action} {a} {b} 0 9\n")
        (lists / f"action_{split}.txt").write_text(header + "".join(rows))
    out = str(tmp_path / "data" / "h2o_milk")
    assert main(["h2o", "--annotations", str(lists), "--videos", str(root), "--fps", "30",
                 "--exo_cameras", "0", "--actions", "5,23", "--out", out]) == 0
    labels, phases, splits = converted(out)
    assert phases == ["grab milk", "pour milk"]  # place milk (13) not selected: -1
    assert labels["subject1_h1_0_cam4"] == labels["subject1_h1_0_cam0"] == \
        [-1, 0, 0, 0, 1, 1, 1, -1, -1, -1]
    assert splits["val"] == {"ego": ["subject3_k2_0_cam4"], "exo": ["subject3_k2_0_cam0"]}
    assert frame_count(os.path.join(out, "ego", "subject4_h1_0_cam4.mp4")) == 10
    printed = capsys.readouterr().out
    assert "fps found: 30 x8" in printed and "encoded 8" in printed


# -- Assembly101 ----------------------------------------------------------------------------------

def test_assembly101(tmp_path):
    ann, rec = tmp_path / "coarse-annotations", tmp_path / "recordings"
    (ann / "coarse_labels").mkdir(parents=True)
    (ann / "coarse_splits").mkdir()
    seqs = [f"nusar-2021_action_both_90{i}-a01_90{i}_user_id_2021-02-01_15372{i}"
            for i in range(4)]
    views = ("C10095_rgb", "HMC_21176875_mono10bit")
    lines = []
    for i, seq in enumerate(seqs):
        for v in views:
            write_video(rec / seq / f"{v}.mp4", 12, 30, seed=i)
            lines.append(f"assembly_{seq}/{v}.mp4\n")
        (ann / "coarse_labels" / f"assembly_{seq}.txt").write_text(
            "000000000\t000000004\tattach cabin\n000000004\t000000009\tscrew chassis\n")
    (ann / "coarse_seq_views.txt").write_text("".join(lines))
    (ann / "coarse_splits" / "train_coarse_assembly.txt").write_text(
        "".join(f"assembly_{s}.txt\tshared\ta01\texcavator\n" for s in seqs[:3]))
    (ann / "coarse_splits" / "val_coarse_assembly.txt").write_text(
        f"assembly_{seqs[3]}.txt\tshared\ta01\texcavator\n")
    out = str(tmp_path / "data" / "asm")
    assert main(["assembly101", "--annotations", str(ann), "--videos", str(rec),
                 "--test_fraction", "0.34", "--out", out]) == 0
    labels, phases, splits = converted(out)
    assert phases == ["attach cabin", "screw chassis"]
    assert splits["val"]["ego"] == [f"{seqs[3]}_HMC_21176875_mono10bit"]
    assert splits["val"]["exo"] == [f"{seqs[3]}_C10095_rgb"]
    assert len(splits["test"]["ego"]) == 1 and len(splits["train"]["exo"]) == 2
    # frames on the 30 fps timeline, end frame exclusive
    assert labels[f"{seqs[0]}_C10095_rgb"] == [0] * 4 + [1] * 5 + [-1] * 3


# -- EgoExoLearn --------------------------------------------------------------------------------

def test_egoexolearn(tmp_path):
    header = ("video_uid,annotation_uid,subset,view,scene,start_sec,end_sec,narration_en,"
              "narration_en_hand_prompt,narration_en_no_hand_prompt\n")
    rows, videos = [], tmp_path / "videos"
    spec = [(f"ego{i}", "ego", "train" if i < 3 else "val") for i in range(4)] + \
        [(f"exo{i}", "exo", "train" if i < 3 else "val") for i in range(4)] + \
        [("lab0", "ego", "train")]
    for k, (uid, view, subset) in enumerate(spec):
        scene = "lab" if uid.startswith("lab") else "kitchen"
        write_video(videos / view / f"{uid}.mp4", 9, 30, seed=k)
        rows.append(f"{uid},a{k}a,{subset},{view},{scene},0.0,0.1,cut onion,,\n")
        rows.append(f"{uid},a{k}b,{subset},{view},{scene},0.2,0.3,fry onion,,\n")
    (tmp_path / "fine_annotation_trainval_en.csv").write_text(header + "".join(rows))
    out = str(tmp_path / "data" / "kitchen")
    assert main(["egoexolearn", "--annotations", str(tmp_path), "--videos", str(videos),
                 "--scene", "kitchen", "--test_fraction", "0.34", "--out", out]) == 0
    labels, phases, splits = converted(out)
    assert phases == ["cut onion", "fry onion"]
    assert splits["val"] == {"ego": ["ego3"], "exo": ["exo3"]}
    assert len(splits["test"]["ego"]) == len(splits["test"]["exo"]) == 1
    assert "lab0" not in labels
    assert labels["ego3"] == [0, 0, 0, -1, -1, -1, 1, 1, 1]

"""Where the AE2 videos and labels live on disk, and how a split is listed (docs/released_code.md#data-layout, #split-order, #view-rules).

Two released layouts under `data_path = <dataset_root>/<dataset>`:

- csv (`break_eggs`, `tennis_forehand`): `{ego,exo}/{train,val,test}.csv` list bare `.mp4` names
  that sit in the same view folder (csv files as Windows tools write them are read too: see
  `read_split_csv`);
- folders (`pour_milk`, `pour_liquid`): `{train,val,test}/{ego,exo}/*.mp4`.

The `.mp4` extension matches in any letter case (`.MP4` from cameras); `validate.py` checks the
whole dataset before a run.

The `synthetic` key reads whichever of the two it finds on disk (docs/design.md#synthetic-data). A video's view is the
name of its parent folder, never a substring of its path (docs/design.md#ego-and-exo-by-parent-folder).
"""
from __future__ import annotations

import codecs
import os
import pickle
from typing import Iterable

import numpy as np

from byov.data.files import (DataError, Video, check_video_path, find_in_folder,
                             frame_count, is_video_file, video_name)

DATASETS = ("break_eggs", "pour_milk", "pour_liquid", "tennis_forehand", "synthetic",
            "charades_ego")  # charades_ego: its own release layout, byov/data/charades_ego.py
CSV_DATASETS = ("break_eggs", "tennis_forehand")
FOLDER_DATASETS = ("pour_milk", "pour_liquid")
SPLITS = ("train", "val", "test")
VIEWS = ("ego", "exo")
LABEL_FILE = "label.pickle"

_ROOT_HINT = "edit dataset_root in utils/config.py or pass --dataset_root"


def _check_dataset(dataset: str) -> None:
    """The four AE2 names and `synthetic`, or any other plain folder name: a dataset of one's
    own (e.g. written by `python -m byov.data.convert`), whose layout is read from the disk as
    for `synthetic` (docs/datasets/README.md)."""
    if dataset in DATASETS:
        return
    if (not isinstance(dataset, str) or dataset.strip() != dataset or dataset in ("", ".", "..")
            or "/" in dataset or "\\" in dataset):
        raise DataError(f"dataset {dataset!r} is not a folder name; use one of "
                        f"{', '.join(DATASETS)} or the name of a folder under the dataset root "
                        f"that holds a dataset in the csv or folder layout (e.g. one written by "
                        f"`python -m byov.data.convert`)")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def dataset_path(dataset_root: str, dataset: str) -> str:
    """Absolute `<dataset_root>/<dataset>`; raises DataError for an unknown dataset name."""
    _check_dataset(dataset)
    return os.path.abspath(os.path.join(dataset_root, dataset))


def expected_tree(dataset: str, layout: str | None = None, data_path: str | None = None) -> str:
    """The folder tree `dataset` must have (rooted at `data_path` if given), for error messages."""
    if layout is None:
        layout = "folders" if dataset in FOLDER_DATASETS else "csv"
    lines = [f"{data_path or '<dataset_root>/' + dataset}/", "    label.pickle"]
    if layout == "csv":
        for view in VIEWS:
            lines += [f"    {view}/", "        train.csv  val.csv  test.csv   (one bare *.mp4 name "
                      "per line)", "        *.mp4"]
    else:
        for split in SPLITS:
            lines += [f"    {split}/", "        ego/*.mp4", "        exo/*.mp4"]
    if dataset == "synthetic":
        lines.append("(synthetic: the csv layout above or the folder layout "
                     "{train,val,test}/{ego,exo}/*.mp4; create it with "
                     "`python -m byov.data.synthetic --out <dataset_root>/synthetic`)")
    return "\n".join(lines)


def _require_dataset_dir(dataset_root: str, dataset: str) -> str:
    data_path = dataset_path(dataset_root, dataset)
    if not os.path.isdir(dataset_root):
        raise DataError(f"dataset root {os.path.abspath(dataset_root)} does not exist; "
                        f"{_ROOT_HINT}. Expected:\n{expected_tree(dataset, data_path=data_path)}")
    if not os.path.isdir(data_path):
        known = ("" if dataset in DATASETS else f" ({dataset!r} is none of the valid names: "
                 f"{', '.join(DATASETS)}; check its spelling, or convert your data into a folder "
                 f"of that name with `python -m byov.data.convert`)")
        raise DataError(f"dataset folder {data_path} does not exist under the dataset root"
                        f"{known}; {_ROOT_HINT}. Expected:\n"
                        f"{expected_tree(dataset, data_path=data_path)}")
    return data_path


def detect_layout(data_path: str, dataset: str) -> str:
    """"csv" or "folders" for `dataset` in `data_path` (the synthetic key and datasets of one's
    own are looked at on the disk)."""
    _check_dataset(dataset)
    if dataset == "charades_ego":
        return "charades_ego"
    if dataset in CSV_DATASETS:
        return "csv"
    if dataset in FOLDER_DATASETS:
        return "folders"
    if os.path.isfile(os.path.join(data_path, "ego", "train.csv")):
        return "csv"
    if os.path.isdir(os.path.join(data_path, "train", "ego")):
        return "folders"
    raise DataError(f"{data_path} has neither ego/train.csv (csv layout) nor train/ego/ (folder "
                    f"layout). Expected one of:\n{expected_tree(dataset, 'csv')}\n"
                    f"or\n{expected_tree(dataset, 'folders')}")


# Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
         (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with BOM"),
         (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"), (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"))
# stripped from both ends of a csv line on top of whitespace: a BOM left mid-file by
# concatenating files, and zero-width spaces pasted with names
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"


def read_split_csv(csv_path: str) -> list[tuple[int, str]]:
    """(line number, video file name) of each non-blank line of a split csv, in file order.

    Reads what Windows tools write as well as plain files: UTF-8 with or without a byte-order
    mark, UTF-16/UTF-32 with one, LF, CRLF or CR line ends. Each line is stripped of whitespace
    and invisible characters (as released, which strips each line); blank lines are skipped.

    Raises:
        DataError: the file is missing or unreadable, or its bytes do not decode in the encoding
            its byte-order mark names (UTF-8 when it has none); the message names the file, the
            encoding tried and the fix.
    """
    if not os.path.isfile(csv_path):
        raise DataError(f"split file {csv_path} is missing; the csv layout needs "
                        f"{{ego,exo}}/{{train,val,test}}.csv, each listing one bare *.mp4 name "
                        f"per line")
    try:
        with open(csv_path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"split file {csv_path} cannot be read ({e.strerror or e}); check its "
                        f"permissions") from e
    codec, label = "utf-8", "UTF-8 (the file has no byte-order mark)"
    for bom, bom_codec, bom_label in _BOMS:
        if data.startswith(bom):
            codec, label = bom_codec, f"{bom_label} (from its byte-order mark)"
            break
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as e:
        raise DataError(f"split file {csv_path} cannot be decoded as {label}: byte "
                        f"{e.start} ({data[e.start:e.start + 4]!r}) is invalid there. Save it "
                        f"as UTF-8 text with one bare name.mp4 per line") from None
    if "\x00" in text:
        raise DataError(f"split file {csv_path} decoded as {label} contains NUL characters: it "
                        f"is probably UTF-16 or UTF-32 saved without a byte-order mark. Save it "
                        f"as UTF-8 text with one bare name.mp4 per line")
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        name = line.strip().strip(_INVISIBLE).strip()
        if name:
            entries.append((lineno, name))
    return entries


def _csv_paths(data_path: str, view: str, split: str) -> list[str]:
    view_dir = os.path.join(data_path, view)
    csv_path = os.path.join(view_dir, f"{split}.csv")
    listing: dict = {}
    paths = []
    for lineno, name in read_split_csv(csv_path):
        where = f"{csv_path}, line {lineno}"
        if os.path.basename(name) != name or "\\" in name or not is_video_file(name):
            raise DataError(f"{where}: {name!r} is not a bare file name ending in .mp4 (no "
                            f"folders, no header row); fix the line")
        path = find_in_folder(view_dir, name, listing)
        if path is None:
            raise DataError(f"{where}: video {os.path.join(view_dir, name)} does not exist; fix "
                            f"the csv or add the video")
        paths.append(path)
    if not paths:
        raise DataError(f"split file {csv_path} lists no videos")
    return paths


def _folder_paths(data_path: str, view: str, split: str) -> list[str]:
    view_dir = os.path.join(data_path, split, view)
    if not os.path.isdir(view_dir):
        raise DataError(f"folder {view_dir} is missing; the folder layout needs "
                        f"{{train,val,test}}/{{ego,exo}}/*.mp4")
    paths = [os.path.join(view_dir, f) for f in sorted(os.listdir(view_dir))
             if is_video_file(f) and os.path.isfile(os.path.join(view_dir, f))]
    if not paths:
        raise DataError(f"folder {view_dir} holds no *.mp4 videos")
    stems: dict[str, str] = {}
    for path in paths:
        other = stems.setdefault(video_name(path).lower(), path)
        if other != path:
            raise DataError(f"{other} and {path} name the same video (file names that differ "
                            f"only in letter case share one label.pickle key); keep one of them")
    return paths


def list_videos(dataset_root: str, dataset: str, split: str) -> list[Video]:
    """Every video of `split`, ego and exo together, sorted by full path (ego first, §2.4).

    This is the released order of embeddings, labels and view flags downstream. Duplicate paths
    (a name listed twice) appear once.
    """
    _check_split(split)
    if dataset == "charades_ego":  # ego first, then third person, each by id
        from byov.data.charades_ego import load_charades_ego
        return load_charades_ego(dataset_root, (split,)).videos[split]
    data_path = _require_dataset_dir(dataset_root, dataset)
    layout = detect_layout(data_path, dataset)
    paths: set[str] = set()
    for view in VIEWS:
        found = (_csv_paths if layout == "csv" else _folder_paths)(data_path, view, split)
        paths.update(os.path.abspath(p) for p in found)
    for path in sorted(paths):  # every path is checked before any is opened
        check_video_path(path)
    videos = []
    for path in sorted(paths):
        videos.append(Video(path=path, name=video_name(path),
                            view=os.path.basename(os.path.dirname(path)), split=split,
                            num_frames=frame_count(path)))
    return videos


def load_labels(dataset_root: str, dataset: str) -> dict[str, np.ndarray]:
    """`label.pickle` of a dataset: basename -> per-frame phase ids (L,) int64 (§2.5)."""
    data_path = _require_dataset_dir(dataset_root, dataset)
    path = os.path.join(data_path, LABEL_FILE)
    if not os.path.isfile(path):
        raise DataError(f"label file {path} is missing; it must be the dataset's label.pickle "
                        f"(a dict: video basename without .mp4 -> per-frame phase ids)")
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f)
    except Exception as e:  # any unpickling failure means the same thing to the user
        raise DataError(f"label file {path} cannot be read ({type(e).__name__}: {e}); replace "
                        f"it with the dataset's original label.pickle") from e
    if not isinstance(raw, dict):
        raise DataError(f"label file {path} holds a {type(raw).__name__}, expected a dict of "
                        f"video name -> per-frame phase ids")
    labels = {}
    for name, value in raw.items():
        labels[str(name)] = _label_array(path, name, value)
    return labels


def _label_array(path: str, name, value) -> np.ndarray:
    """One label.pickle value -> (L,) int64, or DataError naming the entry and what is wrong."""
    where = f"label file {path}: entry {name!r}"
    try:
        arr = np.asarray(value)
    except Exception as e:  # ragged nesting and the like
        raise DataError(f"{where} is not a 1-D sequence of integer phase ids ({e}); replace "
                        f"label.pickle with the dataset's original") from e
    if arr.ndim != 1:
        raise DataError(f"{where} is not a 1-D sequence of integer phase ids (got shape "
                        f"{arr.shape}, dtype {arr.dtype}); each value must list one phase id "
                        f"per frame")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if not bad.any():  # 0.0, 1.0, ...: the integer ids, stored as floats
            return arr.astype(np.int64)
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where} is not a 1-D list of integer phase ids: frame {i} has "
                        f"{arr[i].item()!r} (dtype {arr.dtype}); phase ids must be whole numbers "
                        f"0..K-1 (-1 for background)")
    first = arr[0].item() if arr.size else None
    raise DataError(f"{where} is not a 1-D list of integer phase ids (got dtype {arr.dtype}, "
                    f"e.g. {first!r}); phase ids must be whole numbers 0..K-1 (-1 for "
                    f"background)")


def check_labels(videos: Iterable[Video], labels: dict[str, np.ndarray]) -> None:
    """Raise DataError unless every video has exactly L = num_frames labels (§2.5)."""
    for video in videos:
        if video.name not in labels:
            raise DataError(f"video {video.path} has no entry {video.name!r} in label.pickle; "
                            f"add its labels or remove it from the split")
        n = len(labels[video.name])
        if n != video.num_frames:
            diff = n - video.num_frames
            how = (f"{abs(diff)} label{'s' if abs(diff) > 1 else ''} "
                   f"{'too many' if diff > 0 else 'too few'}")
            raise DataError(f"video {video.path}: label.pickle entry {video.name!r} has {n} "
                            f"labels but the video has {video.num_frames} frames "
                            f"(CAP_PROP_FRAME_COUNT), {how}; there must be exactly one label "
                            f"per frame. Fix the entry (or the video, if it was re-encoded)")

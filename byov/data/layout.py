"""Where the AE2 videos and labels live on disk, and how a split is listed (REFERENCE §2.3-2.7).

Two released layouts under `data_path = <dataset_root>/<dataset>`:

- csv (`break_eggs`, `tennis_forehand`): `{ego,exo}/{train,val,test}.csv` list bare `.mp4` names
  that sit in the same view folder;
- folders (`pour_milk`, `pour_liquid`): `{train,val,test}/{ego,exo}/*.mp4`.

The `synthetic` key reads whichever of the two it finds on disk [DEC 16]. A video's view is the
name of its parent folder, never a substring of its path [DEC 6].
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from byov.errors import ByovError

DATASETS = ("break_eggs", "pour_milk", "pour_liquid", "tennis_forehand", "synthetic")
CSV_DATASETS = ("break_eggs", "tennis_forehand")
FOLDER_DATASETS = ("pour_milk", "pour_liquid")
SPLITS = ("train", "val", "test")
VIEWS = ("ego", "exo")
LABEL_FILE = "label.pickle"

_ROOT_HINT = "edit dataset_root in utils/config.py or pass --dataset_root"


class DataError(ByovError):
    """A problem with the data on disk; the message names the path and the fix."""


@dataclass(frozen=True)
class Video:
    """One video of a split.

    Attributes:
        path: absolute path of the mp4.
        name: basename without `.mp4`; the key of `label.pickle`.
        view: "ego" or "exo", the name of the parent folder [DEC 6].
        split: "train", "val" or "test".
        num_frames: L = int(CAP_PROP_FRAME_COUNT), container metadata as released (§2.6).
    """

    path: str
    name: str
    view: str
    split: str
    num_frames: int

    @property
    def is_ego(self) -> bool:
        return self.view == "ego"


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; valid names: {', '.join(DATASETS)}")


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
        raise DataError(f"dataset folder {data_path} does not exist under the dataset root; "
                        f"{_ROOT_HINT}. Expected:\n{expected_tree(dataset, data_path=data_path)}")
    return data_path


def detect_layout(data_path: str, dataset: str) -> str:
    """"csv" or "folders" for `dataset` in `data_path` (the synthetic key looks at the disk)."""
    _check_dataset(dataset)
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


def frame_count(path: str) -> int:
    """L = int(cv2 CAP_PROP_FRAME_COUNT) of the video at `path` (metadata, as released §2.6)."""
    if not os.path.isfile(path):
        raise DataError(f"video {path} does not exist")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise DataError(f"cannot open video {path}: the file is unreadable or not a video; "
                            f"replace it (e.g. re-encode it with ffmpeg to H.264 mp4)")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if count <= 0:
        raise DataError(f"video {path} reports {count} frames: it is empty or its container has "
                        f"no frame count; replace it (e.g. re-encode it with ffmpeg)")
    return count


def _csv_paths(data_path: str, view: str, split: str) -> list[str]:
    view_dir = os.path.join(data_path, view)
    csv_path = os.path.join(view_dir, f"{split}.csv")
    if not os.path.isfile(csv_path):
        raise DataError(f"split file {csv_path} is missing; the csv layout needs "
                        f"{{ego,exo}}/{{train,val,test}}.csv, each listing one bare *.mp4 name "
                        f"per line")
    with open(csv_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    paths = []
    for lineno, line in enumerate(lines, start=1):
        name = line.strip()
        where = f"{csv_path}, line {lineno}"
        if not name:
            raise DataError(f"{where} is blank; remove it (every line must name one video)")
        if os.path.basename(name) != name or not name.endswith(".mp4"):
            raise DataError(f"{where}: {name!r} is not a bare file name ending in .mp4 (no "
                            f"folders, no header row); fix the line")
        path = os.path.join(view_dir, name)
        if not os.path.isfile(path):
            raise DataError(f"{where}: video {path} does not exist; fix the csv or add the video")
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
             if f.endswith(".mp4") and os.path.isfile(os.path.join(view_dir, f))]
    if not paths:
        raise DataError(f"folder {view_dir} holds no *.mp4 videos")
    return paths


def list_videos(dataset_root: str, dataset: str, split: str) -> list[Video]:
    """Every video of `split`, ego and exo together, sorted by full path (ego first, §2.4).

    This is the released order of embeddings, labels and view flags downstream. Duplicate paths
    (a name listed twice) appear once.
    """
    _check_split(split)
    data_path = _require_dataset_dir(dataset_root, dataset)
    layout = detect_layout(data_path, dataset)
    paths: set[str] = set()
    for view in VIEWS:
        found = (_csv_paths if layout == "csv" else _folder_paths)(data_path, view, split)
        paths.update(os.path.abspath(p) for p in found)
    videos = []
    for path in sorted(paths):
        videos.append(Video(path=path, name=os.path.basename(path)[: -len(".mp4")],
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
        arr = np.asarray(value)
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer)
                                 or (np.issubdtype(arr.dtype, np.floating)
                                     and np.all(arr == np.round(arr)))):
            raise DataError(f"label file {path}: entry {name!r} is not a 1-D list of integer "
                            f"phase ids (got dtype {arr.dtype}, shape {arr.shape})")
        labels[str(name)] = arr.astype(np.int64)
    return labels


def check_labels(videos: Iterable[Video], labels: dict[str, np.ndarray]) -> None:
    """Raise DataError unless every video has exactly L = num_frames labels (§2.5)."""
    for video in videos:
        if video.name not in labels:
            raise DataError(f"video {video.path} has no entry {video.name!r} in label.pickle; "
                            f"add its labels or remove it from the split")
        n = len(labels[video.name])
        if n != video.num_frames:
            raise DataError(f"video {video.path}: label.pickle has {n} labels but the video has "
                            f"{video.num_frames} frames (CAP_PROP_FRAME_COUNT); they must match")

"""Charades-Ego v1 in its public release layout: the csv files, the class list and the videos.

BYOV's second benchmark (paper §7.5; docs/charades_ego.md). `dataset: charades_ego` reads, under
`<dataset_root>/charades_ego/`:

    CharadesEgo_v1_train.csv     one row per video (the official training videos)
    CharadesEgo_v1_test.csv      one row per video (the official test videos)
    Charades_v1_classes.txt      one class per line: "c000 Holding some clothes" (157 classes)
    CharadesEgo_v1_480/<id>.mp4  the videos (the release's 480p folder)

The csv files have a header row; the columns are read by name, and only `id` and `actions` are
needed (the release also has subject, scene, quality, relevance, verified, script, objects,
descriptions, length and charades_video; `script` is used to keep scripts together when the
val split is carved, when present). `actions` is "" (no action: a video with no positive class)
or "c092 11.90 21.20;c147 0.00 12.60": `;`-separated (class id, start s, end s). A video's
video-level target is the set of the class ids in its `actions` cell (the times are checked to be
numbers, then unused), as in the official Charades_v1_classify.m.

Views: an egocentric video's id ends with "EGO" and is the first-person recording of the
third-person video whose id is the same without the suffix (`005BUEGO` / `005BU`). byov calls the
third-person view "exo", as for AE2 data (`Video.view` is "ego" or "exo").

Splits: "train" and "val" come from CharadesEgo_v1_train.csv, "test" is CharadesEgo_v1_test.csv.
The val split (`carve_val`) is a seeded draw of whole *groups*: an ego video and its third-person
partner are one group, and groups whose rows share a non-empty `script` text are merged, so no
script is seen in both train and val. Rule: the group keys (sorted) are permuted by
`numpy.random.default_rng(VAL_SEED)` and the first max(1, round(VAL_FRACTION x groups)) go to val.
The paper's split is not published (docs/charades_ego.md); this rule is byov's choice.

Every problem is found before any decoding, as a `DataError` naming the file, the row and the
fix (`load_charades_ego`).
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from byov.data.files import DataError, Video, find_in_folder, frame_count, is_video_file

DATASET = "charades_ego"
TRAIN_CSV = "CharadesEgo_v1_train.csv"
TEST_CSV = "CharadesEgo_v1_test.csv"
CLASSES_FILE = "Charades_v1_classes.txt"
VIDEO_DIR = "CharadesEgo_v1_480"
EGO_SUFFIX = "EGO"
REQUIRED_COLUMNS = ("id", "actions")
VAL_FRACTION = 0.1  # share of the train csv's groups carved out as val
VAL_SEED = 0
_CLASS_ID = re.compile(r"c\d{3}")


@dataclass(frozen=True)
class Row:
    """One csv row: a video of the release.

    Attributes:
        id: the video id (the mp4's name without extension).
        view: "ego" (id ends with EGO) or "exo" (third person).
        pair: the id without the EGO suffix, shared by a video and its partner.
        script: the row's `script` text ("" when the column is absent or empty).
        classes: sorted indices (into the class file's order) of the classes in `actions`.
        line: the csv line the row starts on, for messages.
    """
    id: str
    view: str
    pair: str
    script: str
    classes: tuple[int, ...]
    line: int


def expected_tree(data_path: str = "<dataset_root>/charades_ego") -> str:
    return "\n".join([f"{data_path}/", f"    {TRAIN_CSV}", f"    {TEST_CSV}",
                      f"    {CLASSES_FILE}", f"    {VIDEO_DIR}/<id>.mp4"])


def _require(path: str, what: str, data_path: str) -> None:
    if not os.path.isfile(path):
        raise DataError(f"{what} {path} is missing; Charades-Ego needs the release's files "
                        f"under --dataset_root/charades_ego:\n{expected_tree(data_path)}")


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start} is invalid); save it as UTF-8 "
                        f"as released") from None
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}); check its permissions") \
            from e


def read_classes(path: str) -> list[tuple[str, str]]:
    """Charades_v1_classes.txt -> [(class id, name)] in file order (the class index order).

    Each non-blank line is "cNNN name" (the name may be empty). Raises DataError for a line
    whose first field is not cNNN, or an id listed twice, naming the line.
    """
    classes, seen = [], {}
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        cid, _, name = line.partition(" ")
        if not _CLASS_ID.fullmatch(cid):
            raise DataError(f"{path}, line {lineno}: {line!r} does not start with a class id "
                            f"cNNN (e.g. 'c000 Holding some clothes'); fix the line")
        if cid in seen:
            raise DataError(f"{path}, line {lineno}: class {cid} is listed again (first on line "
                            f"{seen[cid]}); keep one line per class")
        seen[cid] = lineno
        classes.append((cid, name.strip()))
    if not classes:
        raise DataError(f"{path} lists no classes; it must be the release's "
                        f"Charades_v1_classes.txt (157 lines 'cNNN name')")
    return classes


def parse_actions(cell: str, class_index: dict[str, int], where: str) -> tuple[int, ...]:
    """An `actions` cell -> sorted unique class indices ("" or blanks: no positive class).

    Args:
        cell: e.g. "c092 11.90 21.20;c147 0.00 12.60".
        class_index: {class id: index} from the class file.
        where: "<csv>, row N (line L)", for messages.
    Raises:
        DataError: an item that is not "cNNN start end", times that are not finite numbers, or
            a class id absent from the class file; the message quotes the item and the fix.
    """
    cell = (cell or "").strip()
    if not cell:
        return ()
    found = set()
    for item in cell.split(";"):
        parts = item.split()
        if len(parts) != 3:
            raise DataError(f"{where}: actions item {item!r} of {cell!r} is not 'cNNN start end' "
                            f"(class id, start and end in seconds, items separated by ';'); fix "
                            f"the cell")
        cid, start, end = parts
        if not _CLASS_ID.fullmatch(cid):
            raise DataError(f"{where}: actions item {item!r} starts with {cid!r}, not a class id "
                            f"cNNN; fix the cell")
        for value in (start, end):
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                raise DataError(f"{where}: actions item {item!r} has time {value!r}, not a "
                                f"number of seconds; fix the cell")
        if cid not in class_index:
            raise DataError(f"{where}: actions item {item!r} names class {cid}, which the class "
                            f"file does not list ({len(class_index)} classes); use the release's "
                            f"{CLASSES_FILE} or fix the cell")
        found.add(class_index[cid])
    return tuple(sorted(found))


def view_of(video_id: str) -> str:
    """"ego" when the id ends with EGO (the release's convention), else "exo" (third person)."""
    return "ego" if video_id.endswith(EGO_SUFFIX) else "exo"


def read_rows(path: str, class_index: dict[str, int]) -> list[Row]:
    """The rows of a CharadesEgo_v1_{train,test}.csv, checked (see `parse_actions`).

    Raises:
        DataError: a header without the `id` or `actions` column, a row with an empty id or
            more or fewer fields than the header, an id given twice, a malformed `actions` cell.
    """
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines(keepends=True), restkey="\0extra")
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: the header row {header!r} lacks the column(s) "
                        f"{', '.join(missing)}; the file must be the release's csv, whose header "
                        f"names id, ..., actions, length")
    rows, seen = [], {}
    line = reader.line_num + 1
    for n, record in enumerate(reader, start=1):
        where = f"{path}, row {n} (line {line})"
        if "\0extra" in record:
            raise DataError(f"{where}: the row has more fields than the header "
                            f"({len(header)}); quote cells that contain commas")
        if None in record.values():
            raise DataError(f"{where}: the row has fewer fields than the header "
                            f"({len(header)}); a cut-off row would lose its actions. Restore it "
                            f"from the release")
        vid = (record.get("id") or "").strip()
        if not vid:
            raise DataError(f"{where}: the id cell is empty; fill it in or remove the row")
        if vid in seen:
            raise DataError(f"{where}: id {vid} is listed again (first at row {seen[vid]}); "
                            f"keep one row per video")
        seen[vid] = n
        view = view_of(vid)
        rows.append(Row(id=vid, view=view,
                        pair=vid[:-len(EGO_SUFFIX)] if view == "ego" else vid,
                        script=(record.get("script") or "").strip(),
                        classes=parse_actions(record.get("actions"), class_index, where),
                        line=line))
        line = reader.line_num + 1
    if not rows:
        raise DataError(f"{path} lists no videos")
    return rows


def carve_val(rows: list[Row], fraction: float = VAL_FRACTION,
              seed: int = VAL_SEED) -> tuple[list[Row], list[Row]]:
    """(train rows, val rows) of the train csv, whole groups to each side (module docstring).

    A group is a video with its ego/third-person partner (same `Row.pair`), merged with every
    group that shares a non-empty script text. Raises DataError when there are fewer than two
    groups (nothing can be carved).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    by_script: dict[str, str] = {}
    for row in rows:
        find(row.pair)
        if row.script:
            other = by_script.setdefault(row.script, row.pair)
            parent[find(row.pair)] = find(other)
    groups = sorted({find(r.pair) for r in rows})
    if len(groups) < 2:
        raise DataError(f"the train csv has {len(groups)} group of paired/same-script videos; "
                        f"carving a val split needs at least 2")
    n_val = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    order = np.random.default_rng(seed).permutation(len(groups))
    val_groups = {groups[i] for i in order[:n_val]}
    train = [r for r in rows if find(r.pair) not in val_groups]
    val = [r for r in rows if find(r.pair) in val_groups]
    return train, val


@dataclass
class CharadesEgo:
    """A checked Charades-Ego folder (what `load_charades_ego` returns).

    Attributes:
        classes: [(class id, name)] in index order (K classes).
        rows: {split: [Row]} for the splits asked, ego first then third person, by id.
        videos: {split: [Video]} in the same order (`Video.name` = id).
    """
    classes: list[tuple[str, str]]
    rows: dict[str, list[Row]]
    videos: dict[str, list[Video]]

    def targets(self) -> dict[str, np.ndarray]:
        """{video id: (K,) float32 multi-hot target} over every listed split."""
        k = len(self.classes)
        out = {}
        for rows in self.rows.values():
            for row in rows:
                y = np.zeros(k, np.float32)
                y[list(row.classes)] = 1.0
                out[row.id] = y
        return out


def data_path(dataset_root: str) -> str:
    return os.path.abspath(os.path.join(dataset_root, DATASET))


def split_files(dataset_root: str, splits) -> list[str]:
    """The files that define `splits` (class file first), for fingerprints."""
    base = data_path(dataset_root)
    files = [os.path.join(base, CLASSES_FILE)]
    if any(s in ("train", "val") for s in splits):
        files.append(os.path.join(base, TRAIN_CSV))
    if "test" in splits:
        files.append(os.path.join(base, TEST_CSV))
    return files


def load_charades_ego(dataset_root: str, splits) -> CharadesEgo:
    """Read and check everything `splits` need; decode nothing (frame counts are metadata).

    Args:
        dataset_root: the folder holding `charades_ego/`.
        splits: any of "train", "val", "test".
    Returns:
        CharadesEgo with the rows and `Video`s of each split (num_frames from the container).
    Raises:
        DataError: a missing folder, csv, class file or video, a malformed csv or class file
            (see `read_rows`, `read_classes`), an unreadable video or one with fewer than 2
            frames; the message names the file, the row and the fix.
    """
    base = data_path(dataset_root)
    if not os.path.isdir(base):
        raise DataError(f"dataset folder {base} does not exist; pass --dataset_root DIR with the "
                        f"release unpacked as:\n{expected_tree(base)}\n(synthetic data in this "
                        f"layout: python -m byov.data.synthetic_charades --root "
                        f"{os.path.dirname(base)})")
    classes_path = os.path.join(base, CLASSES_FILE)
    _require(classes_path, "class file", base)
    classes = read_classes(classes_path)
    index = {cid: i for i, (cid, _) in enumerate(classes)}
    wanted = tuple(dict.fromkeys(splits))
    for s in wanted:
        if s not in ("train", "val", "test"):
            raise DataError(f"unknown split {s!r}; valid splits: train, val, test")
    by_split: dict[str, list[Row]] = {}
    if "train" in wanted or "val" in wanted:
        path = os.path.join(base, TRAIN_CSV)
        _require(path, "split file", base)
        by_split["train"], by_split["val"] = carve_val(read_rows(path, index))
    if "test" in wanted:
        path = os.path.join(base, TEST_CSV)
        _require(path, "split file", base)
        by_split["test"] = read_rows(path, index)
    video_dir = os.path.join(base, VIDEO_DIR)
    if not os.path.isdir(video_dir):
        raise DataError(f"video folder {video_dir} is missing; unpack the release's "
                        f"{VIDEO_DIR}.zip there:\n{expected_tree(base)}")
    listing: dict = {}
    rows_out, videos_out = {}, {}
    for split in wanted:
        csv_name = TEST_CSV if split == "test" else TRAIN_CSV
        rows = sorted(by_split[split], key=lambda r: (r.view != "ego", r.id))
        videos = []
        for row in rows:
            where = f"{os.path.join(base, csv_name)}, line {row.line} (id {row.id})"
            path = find_in_folder(video_dir, row.id + ".mp4", listing)
            if path is None or not is_video_file(path):
                raise DataError(f"{where}: video {os.path.join(video_dir, row.id + '.mp4')} does "
                                f"not exist; add it from the release or remove the row")
            try:
                n = frame_count(path)
            except DataError as e:
                raise DataError(f"{where}: {e}") from None
            if n < 2:
                raise DataError(f"{where}: video {path} has {n} frame(s); BYOV and AE2 need at "
                                f"least 2 per video. Remove the row or replace the video")
            videos.append(Video(path=os.path.abspath(path), name=row.id, view=row.view,
                                split=split, num_frames=n))
        rows_out[split], videos_out[split] = rows, videos
    return CharadesEgo(classes=classes, rows=rows_out, videos=videos_out)

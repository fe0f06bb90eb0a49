"""Tiny hand-made datasets for the data-layer tests (a few 32x32 mp4s of 2-9 frames each)."""
import os
import pickle

import cv2
import numpy as np


def write_mp4(path, num_frames, seed=0, size=32):
    """An mp4 (mp4v) of `num_frames` random-ish frames; OpenCV reports exactly that frame count."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (size, size))
    assert writer.isOpened()
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        writer.write(np.roll(base, 3 * t, axis=1))
    writer.release()
    return str(path)


def make_csv_dataset(root, videos, labels=None, name="synthetic"):
    """Dataset `<root>/<name>` in the csv layout.

    videos: {(view, split): [(file name, num_frames), ...]}; every (view, split) of ego/exo x
    train/val/test not given gets one default video. labels: label.pickle content, default one
    label list 0..1 per frame count (first half 0, second half 1) for each video name.
    Returns the dataset folder.
    """
    data = os.path.join(str(root), name)
    lists = {}
    for view in ("ego", "exo"):
        for split in ("train", "val", "test"):
            lists[(view, split)] = videos.get((view, split),
                                              [(f"{view}_{split}.mp4", 4)])
    made = {}
    seed = 0
    for (view, split), entries in lists.items():
        for file, n in entries:
            path = os.path.join(data, view, file)
            if path not in made:
                seed += 1
                write_mp4(path, n, seed)
                made[path] = n
        with open(os.path.join(data, view, f"{split}.csv"), "w", encoding="utf-8") as f:
            f.write("".join(file + "\n" for file, _ in entries))
    if labels is None:
        labels = {}
        for path, n in made.items():
            key = os.path.splitext(os.path.basename(path))[0]
            labels[key] = [0] * (n // 2) + [1] * (n - n // 2)
    write_labels(data, labels)
    return data


def write_labels(data, labels):
    with open(os.path.join(data, "label.pickle"), "wb") as f:
        pickle.dump(labels, f)

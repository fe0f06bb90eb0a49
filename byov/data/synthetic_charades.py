"""A small procedural Charades-Ego-format dataset: paired ego / third-person videos of short
"scripts" of a few actions each, multi-label, written in the release's files (for the tests and
the CPU demo, `configs/charades_ego/demo.yaml`).

Each of K action classes is one object with its own shape, colour and motion (a red disc that
bounces, a green square that slides, a blue triangle that spins, ...), so a frozen image backbone
can tell them apart. A script is 1-3 distinct actions in a random order (a few scripts have none:
their `actions` cell is empty, as some release rows are); both views of a script show the same
actions, with independently drawn timings and idle stretches. The views look different, as ego
and third-person recordings do: the third-person ("exo") video is a static far camera with a
warm textured room and a person-like figure, the object small; the ego video is a close-up,
shaking, rolled camera with a cold palette and noise, the object large and an arm from the bottom.

Written to `<out>/charades_ego/` as the release lays it out (byov/data/charades_ego.py):
CharadesEgo_v1_{train,test}.csv (header id,subject,scene,quality,relevance,verified,script,
objects,descriptions,actions,length,charades_video), Charades_v1_classes.txt, and
CharadesEgo_v1_480/<id>.mp4 with ids `S0000` (third person) and `S0000EGO` (ego).

    python -m byov.data.synthetic_charades --root data/charades_ego_demo [--seed 0]
"""
from __future__ import annotations

import argparse
import csv
import json
import os

import cv2
import numpy as np

from byov.data.charades_ego import (CLASSES_FILE, DATASET, EGO_SUFFIX, TEST_CSV, TRAIN_CSV,
                                    VIDEO_DIR)
from byov.data.layout import DataError
from byov.data.synthetic import _write_mp4

GENERATOR_VERSION = 2  # 2: 32 train scripts, 16-28 frames (demo run time)
STAMP_FILE = "generator.json"
COLUMNS = ("id", "subject", "scene", "quality", "relevance", "verified", "script", "objects",
           "descriptions", "actions", "length", "charades_video")
# (name, shape, BGR colour, motion): every class differs from every other in shape or colour
# and in motion
ACTIONS = (("bouncing red disc", "disc", (40, 40, 220), "bounce"),
           ("sliding green square", "square", (60, 200, 60), "slide"),
           ("spinning blue triangle", "triangle", (220, 90, 40), "spin"),
           ("pulsing yellow ring", "ring", (40, 220, 230), "pulse"),
           ("rising magenta bar", "bar", (200, 50, 200), "rise"),
           ("orbiting cyan cross", "cross", (220, 220, 40), "orbit"),
           ("shaking white disc", "disc", (235, 235, 235), "shake"),
           ("falling orange square", "square", (30, 130, 250), "fall"))
NUM_CLASSES = len(ACTIONS)


def _motion(kind: str, u: float) -> tuple[float, float, float, float]:
    """(dx, dy, angle deg, scale) of an object at phase u in [0, 1] of its action."""
    w = 2 * np.pi * u
    return {"bounce": (0.0, -0.35 * abs(np.sin(2 * w)), 0.0, 1.0),
            "slide": (0.4 * (u - 0.5), 0.0, 0.0, 1.0),
            "spin": (0.0, 0.0, 360.0 * u * 2, 1.0),
            "pulse": (0.0, 0.0, 0.0, 0.6 + 0.5 * abs(np.sin(2 * w))),
            "rise": (0.0, 0.3 * (0.5 - u), 0.0, 1.0),
            "orbit": (0.25 * np.cos(w), 0.25 * np.sin(w), 0.0, 1.0),
            "shake": (0.08 * np.sin(9 * w), 0.0, 0.0, 1.0),
            "fall": (0.0, 0.3 * (u - 0.5), 0.0, 1.0)}[kind]


def _draw(img: np.ndarray, shape: str, color, cx: float, cy: float, r: float,
          angle: float) -> None:
    c = (int(round(cx)), int(round(cy)))
    r = max(2, int(round(r)))
    col = tuple(int(v) for v in color)
    if shape == "disc":
        cv2.circle(img, c, r, col, -1, cv2.LINE_AA)
    elif shape == "ring":
        cv2.circle(img, c, r, col, max(2, r // 3), cv2.LINE_AA)
    else:
        pts = {"square": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
               "triangle": [(0, -1.2), (1.1, 0.9), (-1.1, 0.9)],
               "bar": [(-0.35, -1.3), (0.35, -1.3), (0.35, 1.3), (-0.35, 1.3)]}.get(shape)
        if shape == "cross":
            for a in (angle, angle + 90):
                t = np.deg2rad(a)
                d = (np.cos(t) * r, np.sin(t) * r)
                cv2.line(img, (int(cx - d[0]), int(cy - d[1])), (int(cx + d[0]), int(cy + d[1])),
                         col, max(2, r // 3), cv2.LINE_AA)
            return
        t = np.deg2rad(angle)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        poly = (np.array(pts) @ rot.T) * r + np.array([cx, cy])
        cv2.fillPoly(img, [poly.round().astype(np.int32)], col, cv2.LINE_AA)


def _timeline(n_actions: int, rng: np.random.Generator, fps: int,
              frames: tuple[int, int]) -> tuple[int, list[tuple[int, int]]]:
    """(L, [(first frame, end frame) per action]): actions in order with idle gaps between."""
    L = int(rng.integers(frames[0], frames[1] + 1))
    if n_actions == 0:
        return L, []
    weights = rng.uniform(0.6, 1.4, n_actions)
    gaps = rng.uniform(0.1, 0.5, n_actions + 1)
    total = weights.sum() + gaps.sum()
    spans, t = [], gaps[0] / total * L
    for i in range(n_actions):
        start = int(round(t))
        t += weights[i] / total * L
        end = max(start + 3, int(round(t)))
        spans.append((start, min(end, L)))
        t += gaps[i + 1] / total * L
    return L, spans


def render_video(view: str, classes: list[int], size: int, rng: np.random.Generator,
                 fps: int, frames: tuple[int, int]) -> tuple[np.ndarray, list[tuple]]:
    """(frames (L, size, size, 3) uint8 BGR, [(class, start s, end s)]) of one view."""
    L, spans = _timeline(len(classes), rng, fps, frames)
    ego = view == "ego"
    base = np.array((70, 90, 110) if ego else (150, 175, 200), np.float32)  # cold / warm
    tex = rng.normal(0, 14 if ego else 8, (size // 8, size // 8, 3)).astype(np.float32)
    tex = cv2.resize(tex, (size, size), interpolation=cv2.INTER_CUBIC)
    room = np.clip(base + tex, 0, 255)
    anchor = (rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.6))
    radius = size * (rng.uniform(0.16, 0.22) if ego else rng.uniform(0.07, 0.1))
    roll = rng.uniform(-25, 25) if ego else 0.0
    person_x = rng.uniform(0.15, 0.85)
    out = np.empty((L, size, size, 3), np.uint8)
    for f in range(L):
        img = room.copy()
        if not ego:  # a person-like figure that drifts
            px = (person_x + 0.05 * np.sin(f / 7)) * size
            cv2.rectangle(img, (int(px - size * .05), int(size * .35)),
                          (int(px + size * .05), int(size * .8)), (90, 60, 50), -1)
            cv2.circle(img, (int(px), int(size * .3)), int(size * .05), (120, 150, 190), -1)
        else:  # an arm from the bottom
            cv2.line(img, (int(size * .7), size), (int(size * anchor[0] + size * .1),
                     int(size * anchor[1] + size * .25)), (110, 140, 180), int(size * .08))
        for (start, end), k in zip(spans, classes):
            if start <= f < end:
                _, shape, color, motion = ACTIONS[k]
                dx, dy, angle, scale = _motion(motion, (f - start) / max(1, end - start - 1))
                spread = 1.0 if ego else 0.5
                _draw(img, shape, color, (anchor[0] + dx * spread) * size,
                      (anchor[1] + dy * spread) * size, radius * scale, angle)
        if ego:  # head motion: shake + roll, and sensor noise
            m = cv2.getRotationMatrix2D((size / 2, size / 2), roll + 4 * np.sin(f / 3),
                                        1.0)
            m[:, 2] += rng.normal(0, size * 0.02, 2)
            img = cv2.warpAffine(img, m, (size, size), borderMode=cv2.BORDER_REFLECT)
            img = img + rng.normal(0, 6, img.shape)
        out[f] = np.clip(img, 0, 255).astype(np.uint8)
    actions = [(k, s / fps, e / fps) for (s, e), k in zip(spans, classes)]
    return out, actions


def _actions_cell(actions) -> str:
    return ";".join(f"c{k:03d} {s:.2f} {e:.2f}" for k, s, e in actions)


def generate(root: str, seed: int = 0, scripts: tuple[int, int] = (32, 16), size: int = 96,
             fps: int = 8, frames: tuple[int, int] = (16, 28), empty_every: int = 10) -> str:
    """Write `<root>/charades_ego/` (absent or empty) and return its absolute path.

    Args:
        scripts: (train, test) scripts; each gives one third-person and one ego video.
        size, fps: frame side in pixels and frame rate of the mp4s.
        frames: (min, max) frames per video, drawn per video.
        empty_every: script number i (counting from 0) with i % empty_every == empty_every - 1
            has no action (its `actions` cells are empty); 0 = none.
    Raises:
        ValueError: a bad argument; DataError: the folder is not empty or an mp4 cannot be
            written.
    """
    if min(scripts) < 2 or frames[0] < 8 or frames[0] > frames[1] or size < 32:
        raise ValueError(f"need >= 2 scripts per split, 8 <= min frames <= max frames and "
                         f"size >= 32; got scripts={scripts}, frames={frames}, size={size}")
    out = os.path.abspath(os.path.join(root, DATASET))
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise DataError(f"{out} already exists and is not an empty folder; nothing was written")
    video_dir = os.path.join(out, VIDEO_DIR)
    os.makedirs(video_dir, exist_ok=True)
    with open(os.path.join(out, CLASSES_FILE), "w", encoding="utf-8") as f:
        f.write("".join(f"c{k:03d} {name}\n" for k, (name, *_) in enumerate(ACTIONS)))
    number = 0
    for si, (csv_name, n) in enumerate(((TRAIN_CSV, scripts[0]), (TEST_CSV, scripts[1]))):
        rows = []
        for i in range(n):
            rng = np.random.default_rng([seed, si, i])
            empty = empty_every and i % empty_every == empty_every - 1
            classes = [] if empty else [int(k) for k in rng.choice(
                NUM_CLASSES, size=int(rng.integers(1, 4)), replace=False)]
            third = f"S{number:04d}"
            number += 1
            script = ("The person does nothing." if not classes else
                      "The person watches a " + ", then a ".join(ACTIONS[k][0] for k in classes)
                      + ".")
            for view, vid in (("exo", third), ("ego", third + EGO_SUFFIX)):
                video, actions = render_video(view, classes, size, rng, fps, frames)
                _write_mp4(os.path.join(video_dir, vid + ".mp4"), video, fps)
                rows.append({"id": vid, "subject": f"P{i % 5:02d}", "scene": "Synthetic room",
                             "quality": "7", "relevance": "7", "verified": "Yes",
                             "script": script, "objects": "", "descriptions": script,
                             "actions": _actions_cell(actions),
                             "length": f"{len(video) / fps:.2f}",
                             "charades_video": third if view == "ego" else ""})
        with open(os.path.join(out, csv_name), "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    stamp = {"generator": "byov.data.synthetic_charades", "version": GENERATOR_VERSION,
             "seed": int(seed), "scripts": list(scripts), "size": size, "fps": fps,
             "frames": list(frames), "empty_every": empty_every}
    with open(os.path.join(out, STAMP_FILE), "w", encoding="utf-8") as f:
        json.dump(stamp, f, indent=1)
    return out


def ensure(root: str, seed: int = 0, **kwargs) -> bool:
    """Generate `<root>/charades_ego` unless it holds this generator's current output; True when
    it generated. A folder made by an older generator version or with other arguments, or one
    not made by this generator, is refused (DataError naming it), never overwritten."""
    out = os.path.join(os.path.abspath(root), DATASET)
    if not os.path.exists(out) or (os.path.isdir(out) and not os.listdir(out)):
        generate(root, seed, **kwargs)
        return True
    try:
        with open(os.path.join(out, STAMP_FILE), encoding="utf-8") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        stamp = None
    if not isinstance(stamp, dict) or stamp.get("generator") != "byov.data.synthetic_charades":
        raise DataError(f"{out} exists and was not written by byov.data.synthetic_charades (no "
                        f"{STAMP_FILE}); choose another --root")
    if stamp.get("version") != GENERATOR_VERSION or stamp.get("seed") != seed:
        raise DataError(f"{out} was written by generator version {stamp.get('version')} with "
                        f"seed {stamp.get('seed')}, this one is version {GENERATOR_VERSION}, "
                        f"seed {seed}; remove the folder to regenerate it")
    return False


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="writes ROOT/charades_ego (the dataset_root)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    made = ensure(args.root, args.seed)
    print(f"{'generated' if made else 'reusing'} {os.path.join(args.root, DATASET)}")


if __name__ == "__main__":
    main()

"""A small procedural ego/exo dataset in the AE2 layout, for the demo and the tests [DEC 16].

Every video shows one "pour" action in K = 4 phases, labelled densely per frame in order:

    0 reach  - the hand moves from rest to the upright bottle on the table (bowl empty)
    1 lift   - the bottle is lifted and carried up above the bowl, still upright
    2 pour   - the bottle tilts over the bowl, a stream runs, the bowl fills
    3 place  - the bottle turns upright and goes down to a new spot, the hand lets go (bowl full)

Phase durations, easing (speed) and positions are random per video, and videos are unpaired and
of different lengths. The two views look different: `exo` is a static far camera that sees the
whole scene, a person's body, background clutter and a drifting distractor, in a warm palette;
`ego` is a close-up, rolled, shaking camera that follows the bottle, with the arm entering from
the bottom, textured surfaces, a cold palette, vignetting and noise.

    python -m byov.data.synthetic --out data/synthetic [--layout csv|folders] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import pickle
import shutil
import tempfile
import time

import cv2
import numpy as np

from byov.data.layout import SPLITS, VIEWS, DataError, LABEL_FILE, frame_count

NUM_PHASES = 4
PHASES = ("reach", "lift", "pour", "place")
TABLE_Y = 0.62  # world y of the table top; world coordinates are [0, 1]^2, y down

# BGR palettes: exo warm and plain, ego cold and textured
_PALETTES = {
    "exo": dict(wall=(170, 200, 225), table=(60, 100, 150), bottle=(40, 40, 200),
                bowl=(235, 235, 235), liquid=(200, 120, 40), skin=(120, 160, 215),
                shirt=(150, 90, 40)),
    "ego": dict(wall=(95, 80, 60), table=(120, 150, 110), bottle=(60, 200, 230),
                bowl=(90, 170, 240), liquid=(230, 170, 90), skin=(170, 120, 200),
                shirt=(60, 60, 60)),
}


def _jitter(color, rng, amount=18):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _phase_lengths(L: int, rng: np.random.Generator) -> np.ndarray:
    """Random durations of the K phases, each at least max(3, L // 10) frames, summing to L."""
    low = max(3, L // 10)
    frac = rng.dirichlet(np.full(NUM_PHASES, 3.0))
    n = low + np.floor(frac * (L - NUM_PHASES * low)).astype(int)
    n[rng.integers(NUM_PHASES)] += L - n.sum()
    return n


def _smooth(a: float, b: float, u: float) -> float:
    u = float(np.clip(u, 0.0, 1.0))
    return a + (b - a) * u * u * (3 - 2 * u)


def _lerp2(p, q, u):
    return (_smooth(p[0], q[0], u), _smooth(p[1], q[1], u))


def _pose(s: dict, phase: int, u: float) -> dict:
    """Positions of the moving things at progress u in [0, 1] of `phase` (world coordinates)."""
    def grasp(o, tilt=0.0):  # the hand holds the bottle's side, half way up
        return (o[0] - 0.05 * np.cos(np.radians(tilt)), o[1] - s["bottle_h"] * 0.45)

    if phase == 0:
        obj, tilt, fill = s["start"], 0.0, 0.0
        hand = _lerp2(s["rest"], grasp(obj), u)
    elif phase == 1:
        x = _smooth(s["start"][0], s["pour"][0], u)
        y = _smooth(s["start"][1], s["pour"][1], min(1.0, 1.6 * u))  # up first, then across
        obj, tilt, fill = (x, y), 0.0, 0.0
        hand = grasp(obj)
    elif phase == 2:
        tilt = _smooth(0.0, s["tilt"], u / 0.35)
        fill = s["fill"] * float(np.clip((u - 0.25) / 0.75, 0.0, 1.0))
        obj = (s["pour"][0] + 0.02 * u, s["pour"][1])
        hand = grasp(obj, tilt)
    else:
        tilt = _smooth(s["tilt"], 0.0, u / 0.3)
        obj = _lerp2((s["pour"][0] + 0.02, s["pour"][1]), s["place"], u / 0.7)
        fill = s["fill"]
        hand = _lerp2(grasp(obj, tilt), s["retreat"], (u - 0.7) / 0.3)
    return dict(obj=obj, tilt=tilt, fill=fill, hand=hand, stream=phase == 2 and tilt > 55.0)


def _scene(view: str, size: int, L: int, rng: np.random.Generator) -> dict:
    """Everything about one video that does not change from frame to frame."""
    C = 2 * size  # the world is drawn on a C x C canvas, then looked at through the camera
    pal = {k: _jitter(v, rng) for k, v in _PALETTES[view].items()}
    start = (rng.uniform(0.22, 0.34), TABLE_Y)
    bowl = (rng.uniform(0.62, 0.72), TABLE_Y)
    s = dict(view=view, size=size, C=C, pal=pal, start=start, bowl=bowl,
             pour=(bowl[0] - rng.uniform(0.12, 0.16), TABLE_Y - rng.uniform(0.24, 0.32)),
             place=(rng.uniform(0.44, 0.5), TABLE_Y), tilt=rng.uniform(100, 125),
             fill=rng.uniform(0.6, 0.9), bottle_h=rng.uniform(0.12, 0.16),
             bottle_w=rng.uniform(0.05, 0.065), bowl_w=rng.uniform(0.14, 0.18),
             rest=(rng.uniform(0.78, 0.86), rng.uniform(0.48, 0.56)))
    s["retreat"] = (0.5 * (s["place"][0] + s["rest"][0]), s["rest"][1])
    bg = np.empty((C, C, 3), np.uint8)
    ty = int(TABLE_Y * C)
    bg[:ty], bg[ty:] = pal["wall"], pal["table"]
    t = np.arange(L)
    if view == "exo":
        for _ in range(rng.integers(4, 8)):  # clutter: frames on the wall, things on the table
            x, y = rng.uniform(0.02, 0.95), rng.uniform(0.05, 0.9)
            w, h = rng.uniform(0.04, 0.12, size=2)
            col = tuple(int(c) for c in rng.integers(40, 220, size=3))
            p0, p1 = (int(x * C), int(y * C)), (int((x + w) * C), int((y + h) * C))
            if rng.random() < 0.5:
                cv2.rectangle(bg, p0, p1, col, -1)
            else:
                cv2.circle(bg, p0, int(w * C / 2), col, -1)
        cv2.rectangle(bg, (int(0.84 * C), int(0.2 * C)), (int(0.97 * C), ty), pal["shirt"], -1)
        cv2.circle(bg, (int(0.905 * C), int(0.14 * C)), int(0.06 * C), pal["skin"], -1)
        s["shoulder"] = (0.86, 0.28)
        x0, v = rng.uniform(0.0, 0.5), rng.uniform(0.1, 0.4) / max(L, 1)
        s["distractor"] = np.stack([x0 + v * t, 0.08 + 0.03 * np.sin(t / 7.0)], 1)
        scale = 0.92 * size / C
        off = rng.uniform(-0.03, 0.03, size=2) * C
        s["cam"] = [np.array([[scale, 0, size / 2 - scale * (C / 2 + off[0])],
                              [0, scale, size / 2 - scale * (C / 2 + off[1])]])] * L
        s["vignette"] = None
    else:
        stripes = (np.sin(np.arange(C) / rng.uniform(2.0, 4.0)) * 25).astype(np.int16)
        bg[ty:] = np.clip(bg[ty:].astype(np.int16) + stripes[None, :, None], 0, 255)
        check = ((np.arange(ty)[:, None] // 12 + np.arange(C)[None, :] // 12) % 2) * 30
        bg[:ty] = np.clip(bg[:ty].astype(np.int16) + check[..., None].astype(np.int16), 0, 255)
        zoom = rng.uniform(1.6, 1.9)
        roll = rng.choice([-1, 1]) * rng.uniform(6, 14)
        base = np.array([0.5 * (start[0] + bowl[0]) + 0.03, TABLE_Y - 0.08])
        ph = rng.uniform(0, 2 * np.pi, size=3)
        shake = np.stack([0.015 * np.sin(t / 5.0 + ph[0]) + rng.normal(0, 0.004, L),
                          0.015 * np.sin(t / 6.5 + ph[1]) + rng.normal(0, 0.004, L)], 1)
        s["ego_cam"] = (zoom, roll, base, shake, 2.0 * np.sin(t / 8.0 + ph[2]))
        yy, xx = np.mgrid[:size, :size] / (size - 1) - 0.5
        s["vignette"] = (1.0 - 0.9 * (xx ** 2 + yy ** 2))[..., None]
    s["bg"] = bg
    return s


def _ego_camera(s: dict, t: int, focus) -> np.ndarray:
    zoom, roll, base, shake, wobble = s["ego_cam"]
    size, C = s["size"], s["C"]
    center = (base + np.array([0.3, 0.5]) * (np.asarray(focus) - base) + shake[t]) * C
    return cv2.getRotationMatrix2D((0, 0), roll + wobble[t], zoom * size / C) @ np.array(
        [[1, 0, -center[0]], [0, 1, -center[1]], [0, 0, 1]]) + np.array(
        [[0, 0, size / 2], [0, 0, size / 2]])


def _render(s: dict, t: int, pose: dict, rng: np.random.Generator) -> np.ndarray:
    """One (size, size, 3) uint8 BGR frame."""
    C, size, pal = s["C"], s["size"], s["pal"]
    img = s["bg"].copy()

    def px(p):  # world -> canvas pixel
        return int(round(p[0] * C)), int(round(p[1] * C))

    if s["view"] == "exo":
        d = s["distractor"][t]
        cv2.circle(img, px(d), int(0.03 * C), (90, 160, 90), -1)
    bx, by = s["bowl"]
    bw = s["bowl_w"]
    cv2.ellipse(img, px((bx, by)), (int(bw / 2 * C), int(0.07 * C)), 0, 180, 360, pal["bowl"], -1)
    if pose["fill"] > 0:  # liquid surface rises inside the bowl
        level = by - 0.06 * pose["fill"]
        cv2.ellipse(img, px((bx, by)), (int(bw / 2 * C * 0.9), int(0.06 * pose["fill"] * C)), 0,
                    180, 360, pal["liquid"], -1)
        cv2.line(img, px((bx - bw / 2 * 0.9, level)), px((bx + bw / 2 * 0.9, level)),
                 pal["liquid"], 2)
    ox, oy = pose["obj"]
    w, h, a = s["bottle_w"], s["bottle_h"], np.radians(pose["tilt"])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    center = np.array([ox, oy - h / 2])
    body = np.array([[-w / 2, h / 2], [w / 2, h / 2], [w / 2, -h / 4], [w / 5, -h / 2],
                     [-w / 5, -h / 2], [-w / 2, -h / 4]])
    pts = (body @ rot.T + center) * C
    cv2.fillPoly(img, [pts.astype(np.int32)], pal["bottle"], cv2.LINE_AA)
    if pose["stream"]:
        mouth = (np.array([0.0, -h / 2]) @ rot.T + center)
        cv2.line(img, px(mouth), px((bx, by - 0.05 * pose["fill"])), pal["liquid"],
                 max(2, C // 80))
    if s["view"] == "exo":
        M = s["cam"][t]
    else:
        M = _ego_camera(s, t, pose["obj"])
    frame = cv2.warpAffine(img, M, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)

    def to_frame(p):  # world -> frame pixel
        return tuple(int(round(v)) for v in M @ np.array([p[0] * C, p[1] * C, 1.0]))

    hand = to_frame(pose["hand"])
    scale = np.hypot(M[0, 0], M[0, 1]) * C  # frame pixels per world unit
    if s["view"] == "exo":
        shoulder = to_frame(s["shoulder"])
    else:  # first person: the arm comes up from below the frame
        shoulder = (int(0.8 * size), int(1.2 * size))
    cv2.line(frame, shoulder, hand, pal["skin"], max(2, int(0.035 * scale)), cv2.LINE_AA)
    cv2.circle(frame, hand, max(2, int(0.03 * scale)), pal["skin"], -1, cv2.LINE_AA)
    if s["vignette"] is not None:
        noisy = frame * s["vignette"] * rng.uniform(0.9, 1.1) + rng.normal(0, 6, frame.shape)
        frame = np.clip(noisy, 0, 255).astype(np.uint8)
    return frame


def render_video(view: str, L: int, size: int, rng: np.random.Generator):
    """-> frames (L, size, size, 3) uint8 BGR and labels (L,) int64 with phases 0..K-1 in order."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    s = _scene(view, size, L, rng)
    lengths = _phase_lengths(L, rng)
    speeds = rng.uniform(0.6, 1.7, size=NUM_PHASES)  # easing exponents: slow or fast starts
    labels = np.repeat(np.arange(NUM_PHASES), lengths).astype(np.int64)
    frames = np.empty((L, size, size, 3), np.uint8)
    t = 0
    for k, n in enumerate(lengths):
        for j in range(n):
            u = ((j + 0.5) / n) ** speeds[k]
            frames[t] = _render(s, t, _pose(s, k, u), rng)
            t += 1
    return frames, labels


def _write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    size = frames.shape[1]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    if not writer.isOpened():
        raise DataError(f"OpenCV cannot write {path} with the mp4v codec; check that the folder "
                        f"is writable and that this OpenCV build has an mp4 writer")
    for frame in frames:
        writer.write(frame)
    writer.release()
    count = frame_count(path)
    cap = cv2.VideoCapture(path)
    decoded = 0
    while cap.grab():
        decoded += 1
    cap.release()
    if count != len(frames) or decoded != len(frames):
        raise DataError(f"{path}: wrote {len(frames)} frames but OpenCV reports "
                        f"{count} (CAP_PROP_FRAME_COUNT) and decodes {decoded}")


def generate(out_dir: str, layout: str = "csv", seed: int = 0,
             videos_per_split: tuple[int, int, int] = (24, 6, 6), min_frames: int = 48,
             max_frames: int = 160, size: int = 128, fps: int = 15) -> str:
    """Write a synthetic dataset folder at `out_dir` (absent or empty); return its absolute path.

    Layout "csv": out_dir/{label.pickle, ego/{train,val,test}.csv, ego/*.mp4, exo/...};
    "folders": out_dir/{label.pickle, {train,val,test}/{ego,exo}/*.mp4}. Each split holds
    ceil(n/2) ego and floor(n/2) exo videos named `<view>_<split>_<k:03d>`.
    """
    if layout not in ("csv", "folders"):
        raise ValueError(f"layout must be 'csv' or 'folders', got {layout!r}")
    if len(videos_per_split) != 3 or min(videos_per_split) < 2:
        raise ValueError(f"videos_per_split must be 3 counts (train, val, test) of at least 2 "
                         f"(one ego, one exo), got {videos_per_split}")
    if not 8 <= min_frames <= max_frames:
        raise ValueError(f"need 8 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number >= 32, got {size}")
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise DataError(f"{out_dir} already exists and is not an empty folder; nothing was "
                        f"written (choose a new --out or remove it yourself)")
    os.makedirs(out_dir, exist_ok=True)
    labels = {}
    for si, (split, n) in enumerate(zip(SPLITS, videos_per_split)):
        for vi, (view, count) in enumerate(zip(VIEWS, ((n + 1) // 2, n // 2))):
            folder = os.path.join(out_dir, view) if layout == "csv" else \
                os.path.join(out_dir, split, view)
            os.makedirs(folder, exist_ok=True)
            names = []
            for k in range(count):
                rng = np.random.default_rng([seed, si, vi, k])
                name = f"{view}_{split}_{k:03d}"
                frames, lab = render_video(view, int(rng.integers(min_frames, max_frames + 1)),
                                           size, rng)
                _write_mp4(os.path.join(folder, name + ".mp4"), frames, fps)
                labels[name] = lab.tolist()
                names.append(name + ".mp4")
            if layout == "csv":
                with open(os.path.join(folder, f"{split}.csv"), "w", encoding="utf-8") as f:
                    f.write("".join(n + "\n" for n in names))
    with open(os.path.join(out_dir, LABEL_FILE), "wb") as f:
        pickle.dump(labels, f)  # plain lists: loads without numpy version coupling
    return out_dir


def ensure_synthetic(out_dir: str, layout: str = "csv", seed: int = 0, **kwargs) -> bool:
    """Generate the dataset at `out_dir` unless its label.pickle exists; True if generated.

    Generation goes to a temporary sibling folder renamed into place at the end, so an interrupted
    run leaves no half dataset behind. Extra keyword arguments go to `generate`.
    """
    out_dir = os.path.abspath(out_dir)
    if os.path.isfile(os.path.join(out_dir, LABEL_FILE)):
        return False
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise DataError(f"{out_dir} exists without {LABEL_FILE}; it is not a complete synthetic "
                        f"dataset and will not be touched: remove it or choose another folder")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=os.path.basename(out_dir) + ".tmp.")
    try:
        generate(tmp, layout=layout, seed=seed, **kwargs)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        try:
            os.rename(tmp, out_dir)  # replaces only an empty folder
        except OSError:
            if os.path.isfile(os.path.join(out_dir, LABEL_FILE)):
                return False  # another process finished first
            raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m byov.data.synthetic",
                                     description="Write a synthetic ego/exo dataset folder.")
    parser.add_argument("--out", required=True, help="the dataset folder to create "
                        "(e.g. <dataset_root>/synthetic); must be absent or empty")
    parser.add_argument("--layout", choices=("csv", "folders"), default="csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos_per_split", type=int, nargs=3, default=(24, 6, 6),
                        metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--min_frames", type=int, default=48)
    parser.add_argument("--max_frames", type=int, default=160)
    parser.add_argument("--size", type=int, default=128, help="frame width and height")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        path = generate(args.out, layout=args.layout, seed=args.seed,
                        videos_per_split=tuple(args.videos_per_split),
                        min_frames=args.min_frames, max_frames=args.max_frames, size=args.size)
    except (DataError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    print(f"wrote {path} ({args.layout} layout) in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()

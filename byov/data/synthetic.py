"""A small procedural ego/exo dataset in the AE2 layout, for the demo and the tests.

Every video shows one "pour" action in K = 4 phases, labelled densely per frame in order. As in
AE2, phases are delimited by key events, here the K - 1 onsets of the lift, pour and place
motions, so every frame has a phase id in 0..K-1 (no background id):

    0 reach  - from the first frame until the bottle leaves the table: the hand waits at rest,
               moves to the upright bottle and holds it (bottle full, bowl empty)
    1 lift   - the bottle is lifted and carried up above the bowl, still upright, and held there
    2 pour   - the bottle tilts over the bowl, a stream runs, the bottle empties as the bowl
               fills; then it is held tilted, empty, with no stream
    3 place  - the bottle turns upright and goes down to a new spot, the hand lets go and rests,
               until the last frame (bottle empty, bowl full)

So idle stretches (nothing moves but the camera and the clutter) are labelled as the phase they
sit in: a pause before the first motion is phase 0, a pause after motion k is phase k. Each
frame's phase can be read from the objects' state alone, identically in both views: where the
bottle is (on the table at its start, in the air upright, tilted over the bowl, back on the table
at a new spot), how full the bottle is and how full the bowl is.

Timing (`phase_timeline`). A frame's relative time t / L should say little about its phase,
above all across views, or a model that counts frames would look as good as one that recognises
phases. So per video: the four motions get durations drawn log-uniformly over a
`phase_range`-fold range (independently); idle stretches of random length sit between them; and
the recordings of the two views are cut differently, as in AE2 where the two views come from
different sources: an `exo` recording (a static camera, running before the person starts) begins
with a long idle stretch and stops soon after the place, an `ego` recording (worn, switched on as
the hand reaches out) starts almost at once and runs on long after it. With the defaults about
45% of the frames are idle, and an SVM on t / L alone scores a weighted F1 of about 0.55 within
the views and 0.3-0.4 across them (AE2 protocol; the cuts are what keeps the latter low).
Easing (speed) and positions are random per video too; videos are unpaired, of different lengths.

The two views look different: `exo` is a static far camera that sees the whole scene, a person's
body, background clutter and a bobbing distractor, in a warm palette; `ego` is a close-up,
rolled, shaking camera that follows the bottle, with the arm entering from the bottom, textured
surfaces, a cold palette, vignetting and noise.

    python -m byov.data.synthetic --out data/synthetic [--layout csv|folders] [--seed 0]

The folder gets a `generator.json` stamp holding GENERATOR_VERSION; `ensure_synthetic` refuses
(or, when asked, replaces) a folder written by another version of this generator.
"""
from __future__ import annotations

import argparse
import os
import pickle
import shutil
import tempfile
import time

import json
import re

import cv2
import numpy as np

from byov.data.layout import SPLITS, VIEWS, DataError, LABEL_FILE, frame_count

NUM_PHASES = 4
PHASES = ("reach", "lift", "pour", "place")
# Bump whenever the data written for the same arguments changes; `ensure_synthetic` then refuses
# (or replaces) folders written before. 1: phases only, t / L close to the phase; 2: idle
# stretches, log-uniform phase durations, view-dependent recording cuts, bottle level cue.
GENERATOR_VERSION = 2
STAMP_FILE = "generator.json"
MIN_MOTION_FRAMES = 3  # every motion (reach, lift, pour, place) lasts at least this many frames
# Default timing knobs (units: the video's mean motion duration), see `phase_timeline`
PHASE_RANGE = 4.0
IDLE_BETWEEN = (0.0, 0.8)
IDLE_LONG = (1.5, 4.0)
IDLE_SHORT = (0.0, 0.3)
MIN_FRAMES, MAX_FRAMES = 64, 192  # default video lengths (frames)
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


def _check_range(name: str, r) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {r!r}") from None
    if not 0.0 <= lo <= hi or not np.isfinite(hi):
        raise ValueError(f"{name} must be a (low, high) pair with 0 <= low <= high, got {r}")
    return lo, hi


def phase_timeline(view: str, L: int, rng: np.random.Generator, phase_range: float = PHASE_RANGE,
                   idle_between=IDLE_BETWEEN, idle_long=IDLE_LONG,
                   idle_short=IDLE_SHORT) -> dict:
    """When each of the L frames of one video happens: its phase, and whether and how far it moves.

    The video is 9 stretches: idle, reach, idle, lift, idle, pour, idle, place, idle. Lengths are
    first drawn in units of the video's mean motion duration: each motion log-uniform in
    [1, phase_range] (then divided by the four's mean), each idle between two motions uniform in
    `idle_between`, the idle before the reach uniform in `idle_long` for exo and `idle_short`
    for ego, the idle after the place the other way round. The L frames are then shared out in
    proportion, after MIN_MOTION_FRAMES per motion (largest remainders), so the phases' share
    of the video, and not just their frame counts, varies from video to video.

    Args:
        view: "ego" or "exo".
        L: frames, at least NUM_PHASES * MIN_MOTION_FRAMES.
        rng: the video's generator (advanced here).
        phase_range: >= 1; 1 gives the four motions equal durations.
        idle_between, idle_long, idle_short: (low, high) ranges, >= 0; all (0, 0) gives no idle.
    Returns:
        {"labels": (L,) int64 phase ids 0..K-1, non-decreasing; "moving": (L,) bool, False on
        idle frames; "progress": (L,) float64 in [0, 1], how far the frame's phase motion has got
        (0 before the reach starts, 1 once the motion is over); "motion_frames": (K,) int64 frames
        of each motion; "speeds": (K,) float64 easing exponents of the motions}.
    Raises:
        ValueError: a bad view, L or knob.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if L < NUM_PHASES * MIN_MOTION_FRAMES:
        raise ValueError(f"a video needs at least {NUM_PHASES * MIN_MOTION_FRAMES} frames "
                         f"({MIN_MOTION_FRAMES} per phase), got L = {L}")
    if not phase_range >= 1.0:
        raise ValueError(f"phase_range must be >= 1, got {phase_range}")
    between = _check_range("idle_between", idle_between)
    first, last = _check_range("idle_long", idle_long), _check_range("idle_short", idle_short)
    if view == "ego":
        first, last = last, first
    motion = np.exp(rng.uniform(0.0, np.log(phase_range), NUM_PHASES))
    motion /= motion.mean()
    idle = np.concatenate([[rng.uniform(*first)], rng.uniform(*between, NUM_PHASES - 1),
                           [rng.uniform(*last)]])
    weights = np.empty(2 * NUM_PHASES + 1)
    weights[1::2], weights[0::2] = motion, idle
    free = L - NUM_PHASES * MIN_MOTION_FRAMES
    share = weights / weights.sum() * free
    n = np.floor(share).astype(np.int64)
    n[np.argsort(n - share, kind="stable")[:free - n.sum()]] += 1  # largest remainders
    n[1::2] += MIN_MOTION_FRAMES
    speeds = rng.uniform(0.6, 1.7, size=NUM_PHASES)  # easing exponents: slow or fast starts
    # stretch j's phase: the leading idle and reach are phase 0; motion k and the idle after it k
    phase_of = np.concatenate([[0], np.repeat(np.arange(NUM_PHASES), 2)])
    labels = np.repeat(phase_of, n).astype(np.int64)
    moving = np.repeat(np.arange(2 * NUM_PHASES + 1) % 2 == 1, n)
    progress = np.empty(L)
    t = 0
    for j, m in enumerate(n):
        if j % 2:
            progress[t:t + m] = ((np.arange(m) + 0.5) / m) ** speeds[j // 2]
        else:
            progress[t:t + m] = 0.0 if j == 0 else 1.0
        t += m
    return dict(labels=labels, moving=moving, progress=progress, motion_frames=n[1::2].copy(),
                speeds=speeds)


def _smooth(a: float, b: float, u: float) -> float:
    u = float(np.clip(u, 0.0, 1.0))
    return a + (b - a) * u * u * (3 - 2 * u)


def _lerp2(p, q, u):
    return (_smooth(p[0], q[0], u), _smooth(p[1], q[1], u))


def _pose(s: dict, phase: int, u: float, moving: bool = True) -> dict:
    """The state of the scene at progress u in [0, 1] of `phase` (world coordinates).

    Returns obj (bottle bottom centre), tilt (degrees), fill (bowl level, 0..s["fill"]), level
    (bottle level, 1 full .. 0.15 empty), hand, stream (liquid running). A still frame (`moving`
    False) after the pour shows the tilted, empty bottle without a stream.
    """
    def grasp(o, tilt=0.0):  # the hand holds the bottle's side, half way up
        return (o[0] - 0.05 * np.cos(np.radians(tilt)), o[1] - s["bottle_h"] * 0.45)

    poured = 0.0  # how much of the pour is done: drives both levels, the same in both views
    if phase == 0:
        obj, tilt = s["start"], 0.0
        hand = _lerp2(s["rest"], grasp(obj), u)
    elif phase == 1:
        x = _smooth(s["start"][0], s["pour"][0], u)
        y = _smooth(s["start"][1], s["pour"][1], min(1.0, 1.6 * u))  # up first, then across
        obj, tilt = (x, y), 0.0
        hand = grasp(obj)
    elif phase == 2:
        tilt = _smooth(0.0, s["tilt"], u / 0.35)
        poured = float(np.clip((u - 0.25) / 0.75, 0.0, 1.0))
        obj = (s["pour"][0] + 0.02 * u, s["pour"][1])
        hand = grasp(obj, tilt)
    else:
        tilt = _smooth(s["tilt"], 0.0, u / 0.3)
        obj = _lerp2((s["pour"][0] + 0.02, s["pour"][1]), s["place"], u / 0.7)
        poured = 1.0
        hand = _lerp2(grasp(obj, tilt), s["retreat"], (u - 0.7) / 0.3)
    return dict(obj=obj, tilt=tilt, fill=s["fill"] * poured, level=1.0 - 0.85 * poured,
                hand=hand, stream=phase == 2 and moving and tilt > 55.0 and poured < 1.0)


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
        # a bobbing distractor; periodic in t (not drifting with t / L, which would be a clock)
        x0, ph = rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi, size=2)
        s["distractor"] = np.stack([x0 + 0.08 * np.sin(t / rng.uniform(6, 11) + ph[0]),
                                    0.08 + 0.03 * np.sin(t / 7.0 + ph[1])], 1)
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
    # the liquid inside the bottle, from its bottom up to `level` of its body (bottle frame)
    top = 0.42 * h - pose["level"] * 0.64 * h
    inner = np.array([[-0.36 * w, 0.42 * h], [0.36 * w, 0.42 * h], [0.36 * w, top],
                      [-0.36 * w, top]])
    cv2.fillPoly(img, [((inner @ rot.T + center) * C).astype(np.int32)], pal["liquid"],
                 cv2.LINE_AA)
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


def render_video(view: str, L: int, size: int, rng: np.random.Generator,
                 return_states: bool = False, **timing):
    """One video: frames (L, size, size, 3) uint8 BGR and labels (L,) int64, phases 0..K-1 in order.

    `timing` holds `phase_timeline`'s knobs (phase_range, idle_between, idle_long, idle_short).
    With `return_states`, a third value: the timeline's arrays plus per-frame object states,
    (L,) float64 each: "bowl_fill" (0 empty .. 1 full), "bottle_level" (1 full .. 0.15),
    "tilt" (degrees), "lifted" (the bottle's bottom above the table, world units).
    Raises ValueError for a bad view, L or knob.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    s = _scene(view, size, L, rng)
    tl = phase_timeline(view, L, rng, **timing)
    frames = np.empty((L, size, size, 3), np.uint8)
    keys = ("bowl_fill", "bottle_level", "tilt", "lifted")
    states = {k: np.empty(L) for k in keys}
    for t in range(L):
        pose = _pose(s, int(tl["labels"][t]), float(tl["progress"][t]), bool(tl["moving"][t]))
        frames[t] = _render(s, t, pose, rng)
        for k, v in zip(keys, (pose["fill"] / s["fill"], pose["level"], pose["tilt"],
                               TABLE_Y - pose["obj"][1])):
            states[k][t] = v
    if return_states:
        return frames, tl["labels"], {**tl, **states}
    return frames, tl["labels"]


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


def _stamp(layout: str, seed: int, **arguments) -> dict:
    return {"generator": "byov.data.synthetic", "version": GENERATOR_VERSION,
            "layout": layout, "seed": seed, **arguments}


def read_stamp(out_dir: str) -> dict | None:
    """The folder's `generator.json` as a dict, or None when it is absent or unreadable."""
    try:
        with open(os.path.join(out_dir, STAMP_FILE), encoding="utf-8") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def generate(out_dir: str, layout: str = "csv", seed: int = 0,
             videos_per_split: tuple[int, int, int] = (24, 6, 6), min_frames: int = MIN_FRAMES,
             max_frames: int = MAX_FRAMES, size: int = 128, fps: int = 15,
             phase_range: float = PHASE_RANGE, idle_between=IDLE_BETWEEN, idle_long=IDLE_LONG,
             idle_short=IDLE_SHORT) -> str:
    """Write a synthetic dataset folder at `out_dir` (absent or empty); return its absolute path.

    Layout "csv": out_dir/{label.pickle, generator.json, ego/{train,val,test}.csv, ego/*.mp4,
    exo/...}; "folders": out_dir/{label.pickle, generator.json, {train,val,test}/{ego,exo}/*.mp4}.
    Each split holds ceil(n/2) ego and floor(n/2) exo videos named `<view>_<split>_<k:03d>`, of
    L frames drawn uniformly in [min_frames, max_frames]; the timing knobs (phase_range and the
    idle ranges, in units of a video's mean motion duration) are `phase_timeline`'s. Video
    (split index si, view index vi, number k) is drawn from `default_rng([seed, si, vi, k])`.
    generator.json records GENERATOR_VERSION and these arguments.

    Raises:
        ValueError: a bad argument; DataError: out_dir is not an empty folder, or OpenCV cannot
            write an mp4 that decodes to the frames written.
    """
    if layout not in ("csv", "folders"):
        raise ValueError(f"layout must be 'csv' or 'folders', got {layout!r}")
    if len(videos_per_split) != 3 or min(videos_per_split) < 2:
        raise ValueError(f"videos_per_split must be 3 counts (train, val, test) of at least 2 "
                         f"(one ego, one exo), got {videos_per_split}")
    least = NUM_PHASES * MIN_MOTION_FRAMES
    if not least <= min_frames <= max_frames:
        raise ValueError(f"need {least} <= min_frames <= max_frames, got {min_frames}, "
                         f"{max_frames}")
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number >= 32, got {size}")
    timing = dict(phase_range=float(phase_range),
                  idle_between=list(_check_range("idle_between", idle_between)),
                  idle_long=list(_check_range("idle_long", idle_long)),
                  idle_short=list(_check_range("idle_short", idle_short)))
    if not timing["phase_range"] >= 1.0:
        raise ValueError(f"phase_range must be >= 1, got {phase_range}")
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
                                           size, rng, **timing)
                _write_mp4(os.path.join(folder, name + ".mp4"), frames, fps)
                labels[name] = lab.tolist()
                names.append(name + ".mp4")
            if layout == "csv":
                with open(os.path.join(folder, f"{split}.csv"), "w", encoding="utf-8") as f:
                    f.write("".join(n + "\n" for n in names))
    with open(os.path.join(out_dir, LABEL_FILE), "wb") as f:
        pickle.dump(labels, f)  # plain lists: loads without numpy version coupling
    stamp = _stamp(layout, int(seed), videos_per_split=[int(n) for n in videos_per_split],
                   min_frames=int(min_frames), max_frames=int(max_frames), size=int(size),
                   fps=int(fps), **timing)
    with open(os.path.join(out_dir, STAMP_FILE), "w", encoding="utf-8") as f:
        json.dump(stamp, f, indent=1)
    return out_dir


_NAME = re.compile(r"(ego|exo)_(train|val|test)_\d{3}")


def _is_synthetic(out_dir: str) -> bool:
    """True when every label.pickle key is a name this generator writes."""
    try:
        with open(os.path.join(out_dir, LABEL_FILE), "rb") as f:
            labels = pickle.load(f)
    except Exception:  # unreadable: not something we know we wrote
        return False
    return isinstance(labels, dict) and bool(labels) and all(
        isinstance(k, str) and _NAME.fullmatch(k) for k in labels)


def ensure_synthetic(out_dir: str, layout: str = "csv", seed: int = 0,
                     replace_stale: bool = False, **kwargs) -> bool:
    """Generate the dataset at `out_dir` unless this generator version already wrote it there.

    A folder holding label.pickle and a generator.json stamp of GENERATOR_VERSION is kept as it
    is, whatever arguments made it (returns False). A folder holding label.pickle without such a
    stamp is stale (written by an older generator): with `replace_stale` False it raises
    DataError; with True, and when every label.pickle key is a name this generator writes, the
    folder is regenerated and replaced whole (frame caches stored in it go too). Generation goes
    to a temporary sibling folder renamed into place at the end, so an interrupted run leaves
    no half dataset behind. Extra keyword arguments go to `generate`. Returns True if generated.

    Raises:
        DataError: out_dir is a non-empty folder without label.pickle; or it is stale and
            `replace_stale` is False, or it does not look like this generator's output.
    """
    out_dir = os.path.abspath(out_dir)
    stale = None
    if os.path.isfile(os.path.join(out_dir, LABEL_FILE)):
        stamp = read_stamp(out_dir)
        version = stamp.get("version") if stamp else None
        if version == GENERATOR_VERSION:
            return False
        was = f"version {version}" if version is not None else f"a version before {STAMP_FILE}"
        if not replace_stale:
            raise DataError(
                f"{out_dir} holds synthetic data from {was} of the generator, which is now "
                f"version {GENERATOR_VERSION}: its videos and labels are out of date. Remove the "
                f"folder (rm -r {out_dir}) so that it is generated again, or regenerate it with "
                f"`python -m byov.data.synthetic --out {out_dir}` once it is removed")
        if not _is_synthetic(out_dir):
            raise DataError(f"{out_dir} holds a {LABEL_FILE} with names this generator does not "
                            f"write, so it is not replaced; remove it or choose another folder")
        stale = out_dir
    elif os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise DataError(f"{out_dir} exists without {LABEL_FILE}; it is not a complete synthetic "
                        f"dataset and will not be touched: remove it or choose another folder")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=os.path.basename(out_dir) + ".tmp.")
    old = None
    try:
        generate(tmp, layout=layout, seed=seed, **kwargs)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if stale:  # move the old folder aside (onto an empty temp folder), then swap in
            old = tempfile.mkdtemp(dir=parent, prefix=os.path.basename(out_dir) + ".stale.")
            os.rename(stale, old)
        try:
            os.rename(tmp, out_dir)  # replaces only an empty folder
        except OSError:
            if os.path.isfile(os.path.join(out_dir, LABEL_FILE)):
                return False  # another process finished first
            raise
    finally:
        for path in (tmp, old):
            if path and os.path.isdir(path):
                shutil.rmtree(path)
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
    parser.add_argument("--min_frames", type=int, default=MIN_FRAMES,
                        help=f"shortest video (default {MIN_FRAMES})")
    parser.add_argument("--max_frames", type=int, default=MAX_FRAMES,
                        help=f"longest video (default {MAX_FRAMES})")
    parser.add_argument("--size", type=int, default=128, help="frame width and height")
    parser.add_argument("--phase_range", type=float, default=PHASE_RANGE,
                        help=f"each motion's duration is log-uniform over this many-fold range "
                             f"(default {PHASE_RANGE}; 1 = equal)")
    unit = "in mean motion durations"
    parser.add_argument("--idle_between", type=float, nargs=2, default=IDLE_BETWEEN,
                        metavar=("LO", "HI"), help=f"uniform range of each idle stretch between "
                        f"two motions, {unit} (default {IDLE_BETWEEN[0]} {IDLE_BETWEEN[1]})")
    parser.add_argument("--idle_long", type=float, nargs=2, default=IDLE_LONG,
                        metavar=("LO", "HI"), help=f"idle before the reach in exo videos and "
                        f"after the place in ego videos, {unit} (default {IDLE_LONG[0]} "
                        f"{IDLE_LONG[1]})")
    parser.add_argument("--idle_short", type=float, nargs=2, default=IDLE_SHORT,
                        metavar=("LO", "HI"), help=f"idle after the place in exo videos and "
                        f"before the reach in ego videos, {unit} (default {IDLE_SHORT[0]} "
                        f"{IDLE_SHORT[1]}); give it --idle_long's range to cut both views alike")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        path = generate(args.out, layout=args.layout, seed=args.seed,
                        videos_per_split=tuple(args.videos_per_split),
                        min_frames=args.min_frames, max_frames=args.max_frames, size=args.size,
                        phase_range=args.phase_range, idle_between=tuple(args.idle_between),
                        idle_long=tuple(args.idle_long), idle_short=tuple(args.idle_short))
    except (DataError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    print(f"wrote {path} ({args.layout} layout) in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()

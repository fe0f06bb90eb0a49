"""Speed of the downstream evaluation vs the released-style loops.

    python bench/eval_speed.py --threads 1            # 1x set, then the 5x set
    python bench/eval_speed.py --threads 1 --scales 1 # 1x set only
    python bench/eval_speed.py --scales 1 --repeats 5 # spread over 5 repeats of ours

The 1x set is the size the speed target is set at: 10k train / 5k eval frames, 256-d, 48 train
and 40 eval videos (half ego), 4 phases. Each video is a seeded random walk around per-phase
prototypes, with a per-view offset and frame noise, so the SVM, the neighbours and the alignments
have realistic work to do (F1 about 0.7-0.8, not separable, not noise). Each task is timed (wall)
with its peak RSS growth (sampled from /proc), for this project's implementation and for
`bench/released_eval.py`. The released retrieval is timed on every 10th query and scaled up (its
cost per query is constant). After the table: `retrieval_speedup: X` (released / ours, 1x set),
then retrieval again with duplicated frames (each odd frame of a video repeats the even one
before it, labels unchanged, as a 15 -> 30 fps re-encode gives), which exercises the tie path.
The 5x set has 5x the frames and videos; there the released retrieval and SVM loops are skipped
(they would run for tens of minutes), and so is our classification unless --svm_5x (libsvm's fit
on 50k frames alone takes about 3 minutes). Few-shot is excluded. Our timings are repeated
(--repeats, default 3) and printed as median [min-max], so a figure measured on a busy machine
can be read; the released loops run once (minutes).

Whole process (1x set): the set is saved as an embedding folder and `python evaluate.py
--embeddings DIR --json FILE` is run as a fresh process --repeats times (start-up, imports,
loading, the four tasks, writing: everything a user waits for); the released side is its
start-up (a fresh process importing its libraries and loading the same arrays) plus its four
loops as timed above (tau on train included, as released). Its numbers are checked against the
in-process ones (identical) and the released loops (max |diff|). It is also run pinned to one
core, and its CPU time (user + system, all threads) is printed: wall time can never be below
CPU time / cores, which bounds the speed-up any machine of this many cores can show. Lines:
`whole_process_speedup: X` and `eval_total_seconds: X` (one in-process `evaluate_embeddings`
call on the 1x set, median of the repeats).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import released_eval  # noqa: E402
from byov.eval import SplitData, evaluate_embeddings  # noqa: E402
from byov.eval.distance import SquaredDistances  # noqa: E402
from byov.eval.retrieval import frame_retrieval  # noqa: E402

TASKS = ("classification", "retrieval", "progression", "kendall")
DIM, PHASES = 256, 4


def make_split(rng, protos, view_offsets, n_frames, n_videos, name):
    """SplitData of n_videos random-walk videos totalling n_frames (alternating ego/exo)."""
    base = n_frames // n_videos
    lengths = rng.multinomial(n_frames - n_videos * (base // 2),
                              np.full(n_videos, 1.0 / n_videos)) + base // 2
    xs, ys, videos = [], [], []
    for v, n in enumerate(lengths):
        cuts = np.sort(rng.uniform(0.1, 0.9, PHASES - 1)) * n
        labels = np.searchsorted(cuts, np.arange(n), side="right")
        walk = np.cumsum(rng.normal(scale=0.1, size=(n, DIM)), axis=0)
        x = protos[labels] + view_offsets[v % 2] + walk + rng.normal(size=(n, DIM))
        xs.append(x.astype(np.float32))
        ys.append(labels)
        videos.append({"name": f"{name}_{v:04d}", "view": ("ego", "exo")[v % 2],
                       "num_frames": int(n)})
    return SplitData(np.concatenate(xs), np.concatenate(ys).astype(np.int64), videos, name)


def make_data(scale: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    protos = rng.normal(scale=0.15, size=(PHASES, DIM))
    view_offsets = rng.normal(scale=0.7, size=(2, DIM))
    train = make_split(rng, protos, view_offsets, 10_000 * scale, 48 * scale, "train")
    evl = make_split(rng, protos, view_offsets, 5_000 * scale, 40 * scale, "eval")
    return train, evl


class PeakRSS:
    """Peak resident-memory growth (MiB) while the block runs, sampled every 10 ms."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _poll(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mib = (self.peak - self.base) / 2**20


def timed(fn):
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
    return value, seconds, mem.mib


REPEATS = 3  # set from --repeats
RELEASED_VALUES: dict[str, list] = {}  # task -> the released loops' numbers on the 1x set


def spread(times) -> str:
    """'median [min-max]' of a list of seconds."""
    if len(times) == 1:
        return f"{times[0]:.2f}"
    return f"{statistics.median(times):.2f} [{min(times):.2f}-{max(times):.2f}]"


def timed_repeats(fn, repeats=None):
    """(first value, [seconds of each repeat], peak MiB of the first); the values must agree."""
    value, first, mib = timed(fn)
    times = [first]
    for _ in range((repeats or REPEATS) - 1):
        again, seconds, _ = timed(fn)
        if again != value:
            raise AssertionError(f"a repeat gave other numbers: {again} != {value}")
        times.append(seconds)
    return value, times, mib


def ours(task, train, evl):
    m = evaluate_embeddings(train, evl, tasks=[task], progress=False)
    if task == "classification":
        return [m["classification_f1"][s] for s in ("regular", "ego2exo", "exo2ego")]
    if task == "retrieval":
        return [m["retrieval_map10"][s] for s in ("regular", "ego2exo", "exo2ego")]
    if task == "progression":
        return [m["progression_r2"]]
    return [m["kendalls_tau"]]


RETRIEVAL_QUERY_STEP = 10  # the released per-query loop is timed on every 10th query


def released(task, train, evl):
    if task == "classification":
        return list(released_eval.classification(train.embeds, train.labels, train.is_ego,
                                                 evl.embeds, evl.labels, evl.is_ego))
    if task == "retrieval":
        released_eval.retrieval(evl.embeds, evl.labels, evl.lengths, evl.video_is_ego,
                                query_step=RETRIEVAL_QUERY_STEP)
        return None  # a sample of the queries: its means are not comparable
    if task == "progression":
        return [released_eval.progression(train.embeds, train.labels, train.lengths, evl.embeds,
                                          evl.labels, evl.lengths, False)]
    return [released_eval.kendall(evl.embeds, evl.lengths)]


def duplicated_frames(split):
    """The split with each odd frame of a video replaced by the even frame before it."""
    x = split.embeds.copy()
    odd = split.frame_idx % 2 == 1
    x[odd] = x[np.flatnonzero(odd) - 1]
    return SplitData(x, split.labels, split.videos, split.split + "_dup")


def bench_ties(evl, ours_plain_s):
    """Retrieval on duplicated frames: ours (with its tie path) vs the released loop."""
    dup = duplicated_frames(evl)
    info = {}
    (mine, ours_s, mine_mib) = timed(lambda: frame_retrieval(
        dup.embeds, dup.labels, dup.video_ids, dup.is_ego, ks=(5, 10, 15), info=info))
    _, rel_s, _ = timed(lambda: released_eval.retrieval(
        dup.embeds, dup.labels, dup.lengths, dup.video_is_ego, query_step=RETRIEVAL_QUERY_STEP))
    rel_s *= RETRIEVAL_QUERY_STEP
    n = len(dup.embeds)
    print(f"\nretrieval with duplicated frames (N = {n}): ours {ours_s:.2f} s (peak "
          f"+{mine_mib:.0f} MiB, {ours_s / ours_plain_s:.2f}x the untied time; "
          f"{info['float64_lists']} query lists re-checked in float64, "
          f"{info['float64_rows']} whole rows in float64, {info['released_ranking_queries']} "
          f"of {n} queries ranked by scikit-learn because near-tied candidates of different "
          f"labels reach their top 15), released {rel_s:.2f} s "
          f"(1/{RETRIEVAL_QUERY_STEP} of queries, time x{RETRIEVAL_QUERY_STEP})")
    print(f"retrieval_speedup_with_ties: {rel_s / ours_s:.1f}")


def blocked_topk_seconds(x, k=15, block=512):
    """One plain blocked N x N float64 distance + top-k pass (a reference point: retrieval
    itself ranks on float32 distances and re-checks near-ties in float64)."""
    dist = SquaredDistances(x)
    t0 = time.perf_counter()
    for s in range(0, len(x), block):
        d = dist(x[s:s + block])
        np.argpartition(d, k - 1, axis=1)[:, :k]
    return time.perf_counter() - t0


def bench_scale(scale: int, tasks: tuple[str, ...], run_released: set[str]) -> dict[str, float]:
    train, evl = make_data(scale)
    print(f"\n## {scale}x set: train {len(train.embeds)} frames / {len(train.videos)} videos, "
          f"eval {len(evl.embeds)} frames / {len(evl.videos)} videos, {DIM}-d")
    print("| task | ours s, median [min-max] | ours peak MiB | released s | released peak MiB "
          "| speed-up (median) | max |diff| |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ours_s, rel_s, ours_times = {}, {}, {}
    for task in TASKS:
        if task not in tasks:
            print(f"| {task} | skipped | | skipped | | | |")
            continue
        mine, ours_times[task], mine_mib = timed_repeats(lambda: ours(task, train, evl))
        ours_s[task] = statistics.median(ours_times[task])
        if task in run_released:
            ref, rel_s[task], ref_mib = timed(lambda: released(task, train, evl))
            if scale == 1 and ref is not None:
                RELEASED_VALUES[task] = ref
            if ref is None:  # retrieval: per-query cost is constant, so scale the sample up
                rel_s[task] *= RETRIEVAL_QUERY_STEP
                diff = f"(1/{RETRIEVAL_QUERY_STEP} of queries, time x{RETRIEVAL_QUERY_STEP})"
            else:
                diff = f"{max(abs(a - b) for a, b in zip(mine, ref)):.1e}"
            print(f"| {task} | {spread(ours_times[task])} | {mine_mib:.0f} | "
                  f"{rel_s[task]:.2f} | {ref_mib:.0f} | {rel_s[task] / ours_s[task]:.1f}x | "
                  f"{diff} |")
        else:
            print(f"| {task} | {spread(ours_times[task])} | {mine_mib:.0f} | skipped | | | |")
    if "kendall" in run_released:
        # the release also computes tau on the train split and only logs it; we skip it
        _, rel_s["kendall_train"], ref_mib = timed(
            lambda: released_eval.kendall(train.embeds, train.lengths))
        print(f"| kendall on train (released only, discarded) | 0 | 0 | "
              f"{rel_s['kendall_train']:.2f} | {ref_mib:.0f} | | |")
    total = sum(ours_s.values())
    if set(TASKS) <= set(rel_s) and set(TASKS) <= set(ours_s):
        rel_total = sum(rel_s.values())
        print(f"| **all four** | {total:.2f} | | {rel_total:.2f} | | {rel_total / total:.1f}x | |")
    else:
        print(f"| **all four** | {total:.2f} | | (partial) | | | |")
    print("(progression: ours computes both variants, plain and time feature; the release "
          "computes one)")
    if "retrieval" in rel_s:
        print(f"\nretrieval_speedup: {rel_s['retrieval'] / ours_s['retrieval']:.1f} (released "
              f"{rel_s['retrieval']:.2f} s / ours {ours_s['retrieval']:.2f} s, "
              f"N = {len(evl.embeds)} eval frames, {DIM}-d)")
        bench_ties(evl, ours_s["retrieval"])
    floor = blocked_topk_seconds(evl.embeds)
    print(f"\nblocked N x N float64 distance + top-15 (N = {len(evl.embeds)}): {floor:.2f} s; "
          f"retrieval (3 settings, @5/10/15) = {ours_s['retrieval'] / floor:.1f}x that")
    if scale == 1:
        for block in (512, 1024, 2048, 4096):
            t0 = time.perf_counter()
            with PeakRSS() as mem:
                frame_retrieval(evl.embeds, evl.labels, evl.video_ids, evl.is_ego,
                                block_size=block)
            print(f"retrieval with block_size {block}: {time.perf_counter() - t0:.2f} s, "
                  f"peak +{mem.mib:.0f} MiB")
    return ours_s, rel_s


RELEASED_STARTUP = """
import sys, time, numpy as np
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[2])
import released_eval  # its libraries: scipy, scikit-learn
for split in ("train", "test"):
    np.load(f"{sys.argv[1]}/{split}_embeds.npy"), np.load(f"{sys.argv[1]}/{split}_label.npy")
"""


def run_repeats(cmd, cwd, env, cores) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system, all threads) seconds of REPEATS fresh runs of cmd, pinned to
    `cores` (the evaluation sizes its thread pool from the CPUs it may use)."""
    times, cpu = [], []
    for _ in range(REPEATS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env,
                              preexec_fn=lambda: os.sched_setaffinity(0, cores))
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return times, cpu


def whole_process(train, evl, rel_s: dict[str, float]) -> None:
    """evaluate.py --embeddings as a fresh process vs the released start-up plus loops."""
    from byov.eval import save_split

    root = os.path.dirname(HERE)
    with tempfile.TemporaryDirectory() as folder:
        save_split(folder, "train", train)
        save_split(folder, "test", evl)
        out = os.path.join(folder, "metrics_cli.json")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "evaluate.py", "--embeddings", folder, "--json", out]
        cores = sorted(os.sched_getaffinity(0))
        times, cpu = run_repeats(cmd, root, env, cores)
        one_core = run_repeats(cmd, root, env, cores[:1])[0] if len(cores) > 1 else times
        with open(out) as f:
            cli = json.load(f)
        starts = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", RELEASED_STARTUP, folder, HERE], check=True,
                           env=env)
            starts.append(time.perf_counter() - t0)
    inproc = evaluate_embeddings(train, evl, progress=False)
    same = all(cli[k] == inproc[k] for k in ("classification_f1", "retrieval_map10",
                                             "progression_r2", "kendalls_tau"))
    got = {"classification": [cli["classification_f1"][s] for s in
                              ("regular", "ego2exo", "exo2ego")],
           "progression": [cli["progression_r2"]], "kendall": [cli["kendalls_tau"]]}
    diff = max(abs(a - b) for task, ref in RELEASED_VALUES.items()
               for a, b in zip(got[task], ref))
    ours_med = statistics.median(times)
    loops = sum(rel_s.values())
    released_total = statistics.median(starts) + loops
    print(f"\nwhole process, 1x set: ours `python evaluate.py --embeddings DIR --json FILE` "
          f"{spread(times)} s over {len(times)} runs; released start-up {spread(starts)} s + "
          f"loops {loops:.2f} s (the four tasks and tau on train, timed above) = "
          f"{released_total:.2f} s")
    print(f"evaluate.py's numbers equal the in-process ones: {same}; classification, "
          f"progression and tau vs the released loops: max |diff| {diff:.1e}")
    print(f"whole_process_speedup: {released_total / ours_med:.1f} (median; "
          f"{released_total / max(times):.1f} at the slowest run, "
          f"{released_total / min(times):.1f} at the fastest)")
    # what bounds the figure on this machine: the CPU time the process needs, over its cores
    target = released_total / 30
    print(f"whole process on {len(cores)} core(s): CPU (user + system) {spread(cpu)} s; on one "
          f"core: {spread(one_core)} s wall ({released_total / statistics.median(one_core):.1f}"
          f"x); 30x needs <= {target:.2f} s; no run here can beat CPU / cores = "
          f"{statistics.median(cpu) / len(cores):.2f} s")
    print(f"whole_process_cpu_seconds: {statistics.median(cpu):.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", type=int, nargs="+", default=[1, 5])
    p.add_argument("--svm_5x", action="store_true",
                   help="also time classification on the 5x set (the 50k-frame SVM fit alone "
                        "takes about 3 minutes on 2 cores)")
    p.add_argument("--repeats", type=int, default=3,
                   help="repeats of each of our timings (median [min-max] printed)")
    p.add_argument("--threads", type=int, default=None,
                   help="cap BLAS and OpenMP threads for both implementations (default: the "
                        "libraries'); 1 keeps timings sane on a machine shared with other jobs, "
                        "where spinning BLAS/OpenMP threads (sklearn's kneighbors) stall")
    args = p.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"BLAS/OpenMP threads: {args.threads or 'library default'}")
    global REPEATS
    REPEATS = max(1, args.repeats)
    released_1x = None
    for scale in args.scales:
        if scale == 1:
            _, released_1x = bench_scale(scale, TASKS, set(TASKS))
        else:
            tasks = TASKS if args.svm_5x else TASKS[1:]
            bench_scale(scale, tasks, {"progression", "kendall"})
    train, evl = make_data(1)
    if released_1x is not None:
        whole_process(train, evl, released_1x)
    _, times, _ = timed_repeats(lambda: None if evaluate_embeddings(train, evl, progress=False)
                                else None)
    print(f"\neval_total_seconds: {statistics.median(times):.2f} (median [min-max] "
          f"{spread(times)}; one evaluate_embeddings call, its tasks overlapping, where the "
          f"'all four' row above adds up the tasks run one at a time)")


if __name__ == "__main__":
    main()

"""The benchmark grid: a small yaml of methods x datasets x seeds, and the jobs it stands for.

Grid file (every key but `datasets` optional; unknown keys are errors):

    methods: [byov]              # train.py --method M (byov, or AE2's tcc, dtw, vava, ...)
    datasets: [demo]             # configs/<name>.yaml, or a path to a yaml (relative to this file)
    seeds: [0, 1]
    overrides: {epochs: 4}       # config keys for every job (train.py / evaluate.py --key value)
    dataset_overrides: {demo: {batch_size: 4}}   # per dataset, over `overrides`
    method_overrides: {byov: {lr: 1.0e-4}}       # per method, over both (training jobs only)
    method_configs: {tcc: ae2}   # this method reads configs/ae2/<dataset>.yaml (AE2's settings)
    baselines: [time, frozen, random_init]       # evaluate.py rows without BYOV training
    output_root: runs/bench      # relative to the current directory
    launcher: local              # local | torchrun | slurm
    nproc: 1                     # processes (GPUs) per training job under torchrun / per node
    checkpoint: best             # best (best.pth, else last.pth) | last
    slurm: {partition: gpu, time: "24:00:00", nodes: 1, gpus_per_node: 4}

A training job trains `<output_root>/<dataset>/<method>/seed<S>` and evaluates its checkpoint on
the test split into `test_metrics.json` there; a baseline job evaluates into
`<output_root>/<dataset>/baselines/<name>[/seed<S>]/test_metrics.json` (seeded baselines only
run once per seed).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from byov.errors import ByovError
from byov.spec import VIDEO_LEVEL_DATASETS, data_spec, feature_spec, schedule_spec

LAUNCHERS = ("local", "torchrun", "slurm")
CHECKPOINTS = ("best", "last")
GRID_KEYS = ("methods", "datasets", "seeds", "overrides", "dataset_overrides",
             "method_overrides", "method_configs", "baselines", "output_root", "launcher",
             "nproc", "checkpoint", "slurm")
SLURM_KEYS = ("partition", "account", "time", "nodes", "gpus_per_node", "cpus_per_task", "mem",
              "max_parallel", "rdzv_port", "directives", "setup")
# keys the grid sets itself for each job: an override of them would break the folder layout
MANAGED_KEYS = ("seed", "output_dir", "resume", "ckpt", "config", "method")
DEFAULT_METHOD = "byov"


class GridError(ByovError, ValueError):
    """A grid file that cannot be run: a bad key or value (the message names it and the fix)."""


@dataclass(frozen=True)
class BaselineSpec:
    """How a trivial baseline is evaluated. `seeded`: its embeddings depend on the seed (one job
    per seed); `fallback`: the evaluate.py flags that stand for it when the CLI has no
    `--baseline` yet (None: skipped until it has)."""
    title: str
    seeded: bool
    fallback: tuple[str, ...] | None


BASELINES = {
    "time": BaselineSpec("time (frame index)", False, None),
    "frozen": BaselineSpec("frozen backbone features", False, ("--frozen_features",)),
    "random_init": BaselineSpec("random-init BYOV encoder", True, None),
    "prior": BaselineSpec("chance (training class prior)", False, None),  # charades_ego only
}
# baselines that only mean something for one kind of dataset: t/L mean-pools to a constant per
# video, and the class prior is a video-level (multi-label) baseline
FRAME_LEVEL_ONLY = ("time",)
VIDEO_LEVEL_ONLY = ("prior",)


@dataclass
class Grid:
    path: str
    methods: list[str]
    datasets: list[tuple[str, str]]  # (name, absolute config path)
    seeds: list[int]
    overrides: dict[str, Any]
    dataset_overrides: dict[str, dict[str, Any]]
    method_overrides: dict[str, dict[str, Any]]
    baselines: list[str]
    output_root: str  # absolute
    launcher: str = "local"
    nproc: int = 1
    checkpoint: str = "best"
    slurm: dict[str, Any] = field(default_factory=dict)
    # method -> {dataset name: config path} where the method has its own configs (method_configs)
    method_config_paths: dict[str, dict[str, str]] = field(default_factory=dict)

    def config_path(self, dataset: str, method: str | None) -> str:
        """The config a job of `method` (None: a baseline) on `dataset` runs with."""
        default = dict(self.datasets)[dataset]
        return self.method_config_paths.get(method, {}).get(dataset, default)


@dataclass
class Capabilities:
    """What the installed train.py / evaluate.py accept (they grow flags over time).
    baseline_choices None = `--baseline` exists but its choices are not listed."""
    method_flag: bool = False
    baseline_flag: bool = False
    baseline_choices: tuple[str, ...] | None = None

    def baseline_argv(self, name: str) -> list[str] | None:
        """evaluate.py flags for baseline `name`, or None when this evaluate.py cannot run it."""
        if self.baseline_flag and (self.baseline_choices is None
                                   or name in self.baseline_choices):
            return ["--baseline", name]
        fallback = BASELINES[name].fallback if name in BASELINES else None
        return list(fallback) if fallback is not None else None


@dataclass
class Job:
    """One unit of the grid. Argument lists exclude the program (`train.py`, `evaluate.py`,
    `-m byov.features`); `eval_argv` of a training job lacks `--ckpt`, chosen when it runs."""
    id: int
    kind: str  # "train" | "baseline"
    dataset: str  # the grid's name for it (configs/<dataset>.yaml)
    dataset_key: str  # the resolved config's `dataset` (break_eggs, synthetic, ...)
    method: str  # method, or baseline name
    seed: int | None
    run_dir: str
    log: str
    config_path: str
    train_argv: list[str]
    eval_argv: list[str]
    extract_argv: list[str] | None
    epochs: int
    checkpoint: str
    signature: str
    config: dict  # the resolved config of the job (compared with an existing run's config.yaml)

    @property
    def name(self) -> str:
        seed = "" if self.seed is None else f"/seed{self.seed}"
        what = self.method if self.kind == "train" else f"baselines/{self.method}"
        return f"{self.dataset}/{what}{seed}"

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.run_dir, "test_metrics.json")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GridError(f"{where} must be a mapping of config keys to values, got {value!r}")
    bad = [k for k in value if k in MANAGED_KEYS]
    if bad:
        raise GridError(f"{where} sets {', '.join(bad)}, which the grid sets itself per job "
                        f"(use methods:, seeds: and output_root: instead); remove them")
    return dict(value)


def _names(value, where: str, allow_empty: bool = False) -> list:
    if value is None:
        value = []
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or (not value and not allow_empty):
        raise GridError(f"{where} must be a non-empty list, got {value!r}")
    if len(set(map(str, value))) != len(value):
        raise GridError(f"{where} lists a value twice: {value}")
    return value


def load_grid(path: str, repo_root: str | None = None, cwd: str | None = None) -> Grid:
    """Read and check a grid file. Raises GridError naming the key, FileNotFoundError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"grid file {path} does not exist (examples: configs/grid/)")
    from byov.yaml_strict import load
    raw = load(path) or {}  # a key given twice (two overrides: blocks) is refused
    if not isinstance(raw, dict):
        raise GridError(f"{path}: expected a mapping (methods:, datasets:, seeds:, ...)")
    unknown = sorted(set(raw) - set(GRID_KEYS))
    if unknown:
        raise GridError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: "
                        f"{', '.join(GRID_KEYS)}")
    repo_root = repo_root or _repo_root()
    here = os.path.dirname(os.path.abspath(path))
    datasets = []
    for name in _names(raw.get("datasets"), f"{path}: datasets"):
        name = str(name)
        if name.endswith((".yaml", ".yml")):
            name = os.path.expanduser(name)
            cfg = name if os.path.isabs(name) else os.path.join(here, name)
            label = os.path.splitext(os.path.basename(name))[0]
        else:
            cfg, label = os.path.join(repo_root, "configs", f"{name}.yaml"), name
        if not os.path.isfile(cfg):
            valid = sorted(n[:-5] for n in os.listdir(os.path.join(repo_root, "configs"))
                           if n.endswith(".yaml"))
            raise GridError(f"{path}: dataset {name!r}: config {cfg} does not exist; name one of "
                            f"{', '.join(valid)} (configs/<name>.yaml) or a yaml path")
        datasets.append((label, os.path.abspath(cfg)))
    if len({d for d, _ in datasets}) != len(datasets):
        raise GridError(f"{path}: two datasets share the name {[d for d, _ in datasets]}")
    seeds = _names(raw.get("seeds", [0]), f"{path}: seeds")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise GridError(f"{path}: seeds must be non-negative integers, got {seeds}")
    methods = [str(m) for m in _names(raw.get("methods", [DEFAULT_METHOD]), f"{path}: methods",
                                      allow_empty=True)]
    baselines = [str(b) for b in _names(raw.get("baselines"), f"{path}: baselines",
                                        allow_empty=True)]
    if not methods and not baselines:
        raise GridError(f"{path}: nothing to run: methods: and baselines: are both empty")
    per = {}
    for key, names in (("dataset_overrides", [d for d, _ in datasets]),
                       ("method_overrides", methods)):
        table = raw.get(key) or {}
        if not isinstance(table, dict):
            raise GridError(f"{path}: {key} must map a name to a mapping of config keys")
        stray = sorted(set(table) - set(names))
        if stray:
            raise GridError(f"{path}: {key} names {', '.join(map(str, stray))}, which the grid "
                            f"does not list (listed: {', '.join(names)})")
        per[key] = {n: _mapping(v, f"{path}: {key}.{n}") for n, v in table.items()}
    method_configs = raw.get("method_configs") or {}
    if not isinstance(method_configs, dict) or set(method_configs) - set(methods):
        raise GridError(f"{path}: method_configs must map methods the grid lists ({methods}) to "
                        f"a folder under configs/ (e.g. {{tcc: ae2}}); got {method_configs!r}")
    method_paths = {}
    for method, folder in method_configs.items():
        method_paths[method] = {}
        for label, cfg in datasets:
            if os.path.basename(cfg) != f"{label}.yaml" or os.path.dirname(cfg) != os.path.join(
                    repo_root, "configs"):
                raise GridError(f"{path}: method_configs needs datasets named as in configs/ "
                                f"(dataset {label!r} is the file {cfg})")
            own = os.path.join(repo_root, "configs", str(folder), f"{label}.yaml")
            if not os.path.isfile(own):
                raise GridError(f"{path}: method_configs.{method}: {own} does not exist; add it "
                                f"or drop {method} from method_configs")
            method_paths[method][label] = own
    launcher = raw.get("launcher", "local")
    if launcher not in LAUNCHERS:
        raise GridError(f"{path}: launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    nproc = raw.get("nproc", 1)
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise GridError(f"{path}: nproc must be a positive integer, got {nproc!r}")
    checkpoint = raw.get("checkpoint", "best")
    if checkpoint not in CHECKPOINTS:
        raise GridError(f"{path}: checkpoint {checkpoint!r}: expected best or last")
    slurm = raw.get("slurm") or {}
    if not isinstance(slurm, dict) or set(slurm) - set(SLURM_KEYS):
        raise GridError(f"{path}: slurm must be a mapping with keys among "
                        f"{', '.join(SLURM_KEYS)}; got {slurm!r}")
    root = str(raw.get("output_root", "runs/bench"))
    if root.startswith("~"):
        expanded = os.path.expanduser(root)
        if expanded.startswith("~"):
            raise GridError(f"{path}: output_root {root!r}: cannot expand '~' (unknown user or "
                            f"no home folder); write the full path")
        print(f"expanded ~ in output_root: {root} -> {expanded}")
        root = expanded
    root = root if os.path.isabs(root) else os.path.join(cwd or os.getcwd(), root)
    return Grid(path=os.path.abspath(path), methods=methods, datasets=datasets, seeds=seeds,
                overrides=_mapping(raw.get("overrides"), f"{path}: overrides"),
                dataset_overrides=per["dataset_overrides"],
                method_overrides=per["method_overrides"], baselines=baselines,
                output_root=os.path.abspath(root), launcher=launcher, nproc=nproc,
                checkpoint=checkpoint, slurm=slurm, method_config_paths=method_paths)


def override_argv(values: dict[str, Any]) -> list[str]:
    """Config overrides as command-line flags (True -> --key, False -> --no-key)."""
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            out.append(f"--{key}" if value else f"--no-{key}")
        elif isinstance(value, (list, dict)):
            raise GridError(f"override {key}: {value!r}: config values are scalars")
        else:
            out += [f"--{key}", "" if value is None else str(value)]
    return out


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_jobs(grid: Grid, resolve: Callable[[list[str]], dict], caps: Capabilities,
              note: Callable[[str], None] = print) -> list[Job]:
    """The grid's jobs in order (per dataset: methods x seeds, then baselines).

    resolve(argv) -> the resolved flat config dict of `train.py argv` (checks keys and values).
    A baseline this evaluate.py cannot run yet is left out with a `note`; a method other than
    byov when train.py has no --method is an error.
    """
    if any(m != DEFAULT_METHOD for m in grid.methods) and not caps.method_flag:
        raise GridError(f"{grid.path}: methods {grid.methods} name more than {DEFAULT_METHOD}, "
                        f"but this train.py has no --method flag; list only {DEFAULT_METHOD}")
    unknown = [b for b in grid.baselines if b not in BASELINES
               and not (caps.baseline_choices and b in caps.baseline_choices)]
    if unknown:
        raise GridError(f"{grid.path}: unknown baseline(s) {', '.join(unknown)}; known: "
                        f"{', '.join(BASELINES)}")
    jobs: list[Job] = []
    logs = os.path.join(grid.output_root, "logs")
    for dataset, _ in grid.datasets:
        shared = {**grid.overrides, **grid.dataset_overrides.get(dataset, {})}
        for method in grid.methods:
            cfg_path = grid.config_path(dataset, method)
            base, cfg_hash = ["--config", cfg_path], _sha256(cfg_path)
            values = {**shared, **grid.method_overrides.get(method, {})}
            # always named when train.py takes --method (a config file may set another method);
            # an older train.py without the flag trains byov only
            method_argv = ["--method", method] if caps.method_flag else []
            for seed in grid.seeds:
                run = os.path.join(grid.output_root, dataset, method, f"seed{seed}")
                argv = base + method_argv + override_argv(values)
                config = resolve(argv + ["--seed", str(seed), "--output_dir", run])
                train_argv = argv + ["--seed", str(seed), "--output_dir", run, "--resume", "auto"]
                eval_argv = argv + ["--json", os.path.join(run, "test_metrics.json")]
                extract = (base + override_argv(values) if feature_spec(config).kind != "fly"
                           else None)
                jobs.append(Job(
                    id=len(jobs), kind="train", dataset=dataset,
                    dataset_key=data_spec(config).dataset,
                    method=method, seed=seed, run_dir=run,
                    log=os.path.join(logs, dataset, f"{method}_seed{seed}.log"),
                    config_path=cfg_path, train_argv=train_argv, eval_argv=eval_argv,
                    extract_argv=extract, epochs=schedule_spec(config).epochs,
                    checkpoint=grid.checkpoint,
                    signature=_signature(cfg_hash, train_argv, eval_argv, grid.checkpoint),
                    config=config))
        cfg_path = grid.config_path(dataset, None)
        base, cfg_hash = ["--config", cfg_path], _sha256(cfg_path)
        for name in grid.baselines:
            flags = caps.baseline_argv(name)
            if flags is None:
                note(f"note: baseline '{name}' skipped: this evaluate.py has no --baseline "
                     f"{name} yet (it runs once evaluate.py accepts it)")
                continue
            seeds = grid.seeds if BASELINES.get(name, BaselineSpec(name, True, None)).seeded \
                else [None]
            for seed in seeds:
                out = os.path.join(grid.output_root, dataset, "baselines", name,
                                   *([f"seed{seed}"] if seed is not None else []))
                argv = base + override_argv(shared)
                argv += ["--seed", str(seed)] if seed is not None else []
                argv += ["--output_dir", out]
                config = resolve(argv)
                video_level = data_spec(config).dataset in VIDEO_LEVEL_DATASETS
                if name in (FRAME_LEVEL_ONLY if video_level else VIDEO_LEVEL_ONLY):
                    note(f"note: baseline '{name}' skipped for {dataset}: it is "
                         f"{'a frame-level' if video_level else 'a video-level'} baseline")
                    break
                eval_argv = argv + flags + ["--embed_dir", os.path.join(out, "eval"),
                                            "--json", os.path.join(out, "test_metrics.json")]
                tag = name if seed is None else f"{name}_seed{seed}"
                jobs.append(Job(
                    id=len(jobs), kind="baseline", dataset=dataset,
                    dataset_key=data_spec(config).dataset,
                    method=name, seed=seed, run_dir=out,
                    log=os.path.join(logs, dataset, f"baseline_{tag}.log"), config_path=cfg_path,
                    train_argv=[], eval_argv=eval_argv, extract_argv=None,
                    epochs=0, checkpoint="", signature=_signature(cfg_hash, [], eval_argv, ""),
                    config=config))
    return jobs


def _signature(cfg_hash: str, train_argv: list[str], eval_argv: list[str], ckpt: str) -> str:
    """What a finished job must have been run with to count as done: the config file's content
    and the exact arguments (a changed config or override makes the job run again)."""
    text = "\n".join([cfg_hash, ckpt, "train", *train_argv, "eval", *eval_argv])
    return hashlib.sha256(text.encode()).hexdigest()[:16]

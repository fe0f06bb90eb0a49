"""The command lines of train.py, evaluate.py and `python -m byov.features extract` (issue 15,
item 5): `--help` grouped by section with the entry point's own flags first; a config flag an
entry point does not use is refused there, naming the entry point that uses it; keys in a
--config yaml are accepted everywhere; and every caller's flags (scripts/run.sh, the configs,
the benchmark grid, the report) still parse."""
import dataclasses
import os
import re
import subprocess
import sys

import pytest
import yaml

from utils import config as cfgmod
from utils.config import ENTRY_POINTS, KEYS, SECTIONS, Config, load_config, used_keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parser_of(entry):
    if entry == "train":
        import train
        return train.build_train_parser()
    if entry == "evaluate":
        import evaluate
        return evaluate.build_eval_parser()
    from byov.cli.features import build_parser
    return build_parser(cfgmod)


def own_flags(entry):
    return {"train": [], "evaluate": ["--embeddings", "--json", "--val_files_are_test",
                                      "--baseline", "--frozen_features", "--embed_dir"],
            "extract": ["--splits", "--kind"]}[entry]


def group_titles(help_text):
    return [line[:-1] for line in help_text.split("Refused here")[0].splitlines()
            if line.endswith(":") and not line.startswith((" ", "usage"))]


def refused_message(parser, argv, capsys):
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    return " ".join(capsys.readouterr().err.split())


def test_every_key_has_a_section_and_its_entry_points():
    for f in dataclasses.fields(Config):
        assert f.metadata["section"].split(":")[0] in SECTIONS, f.name
        assert f.metadata["used_by"] and set(f.metadata["used_by"]) <= set(ENTRY_POINTS), f.name
    tops = {f.metadata["section"].split(":")[0] for f in dataclasses.fields(Config)}
    assert tops == set(SECTIONS)
    assert used_keys("train") and set(used_keys("evaluate")) >= {
        "ckpt", "weights", "eval_mode", "dataset_root", "frame_cache_dir", "feature_cache_dir",
        "encode_chunk_size", "device"}
    assert "lr" not in used_keys("evaluate") and "ckpt" not in used_keys("train")
    with pytest.raises(ValueError, match="section 'optimizer' must start with one of"):
        cfgmod._key(1, "x", "optimizer", "train")
    with pytest.raises(ValueError, match="used_by 'trian'"):
        cfgmod._key(1, "x", "training", "trian")


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_help_lists_own_flags_first_then_the_used_keys_by_section(entry):
    text = parser_of(entry).format_help()
    titles = group_titles(text)
    assert titles[0] == f"{ENTRY_POINTS[entry]} options"
    tops = [SECTIONS.index(t.split(":")[0]) for t in titles[1:]]
    assert tops == sorted(tops) and len(tops) >= 3, titles  # sections in SECTIONS order
    first_section = text.index(f"\n{titles[1]}:\n")
    for flag in ["--config"] + own_flags(entry):
        assert text.index(f"  {flag}") < first_section, flag
    body, _, epilog = text.partition("Refused here")
    for key in KEYS:  # a used key is shown with its meaning; another only in the refused list
        shown = re.search(rf"^  --{key}\b", body, re.M) is not None
        assert shown == (key in used_keys(entry)), (entry, key)
        assert (f"--{key}" in epilog.split()) == (key not in used_keys(entry)), (entry, key)
    usage = text.split("\n\n")[0]
    assert all(flag in usage for flag in own_flags(entry)) and "[--KEY VALUE ...]" in usage


def test_train_help_in_a_subprocess_is_grouped():
    out = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    titles = group_titles(out.stdout)
    assert titles[:3] == ["train.py options", "data", "data: feature cache"]
    assert [t.split(":")[0] for t in titles[1:]] == sorted(
        (t.split(":")[0] for t in titles[1:]), key=SECTIONS.index)
    assert "--method" in out.stdout  # what the grid's capability probe looks for


def test_train_refuses_ckpt_and_says_what_to_use(capsys):
    import train
    for argv in (["--ckpt", "logs/run/checkpoints/last.pth"], ["--ckpt=x.pth"]):
        with pytest.raises(SystemExit) as info:
            train.main(argv)
        assert info.value.code == 2
        err = " ".join(capsys.readouterr().err.split())
        assert ("--ckpt is an evaluate.py flag, not used by train.py; to start a new run from a "
                "checkpoint's weights use --init_from, to continue a run --resume") in err
    parser = parser_of("train")
    assert "--few_shot is an evaluate.py flag" in refused_message(
        parser, ["--no-few_shot"], capsys)
    assert "--weights is an evaluate.py flag" in refused_message(
        parser, ["--weights", "ema"], capsys)


def test_evaluate_refuses_training_flags(tmp_path, capsys):
    import evaluate
    with pytest.raises(SystemExit):
        evaluate.main(["--embeddings", str(tmp_path), "--epochs", "3"])
    err = " ".join(capsys.readouterr().err.split())
    assert ("--epochs is a train.py flag, not used by evaluate.py; evaluate.py --ckpt takes the "
            "training settings from the checkpoint") in err
    msg = refused_message(parser_of("evaluate"), ["--resume", "auto"], capsys)
    assert "--resume is a train.py flag" in msg and "evaluate a checkpoint with --ckpt" in msg


def test_extract_refuses_what_it_does_not_use(capsys):
    from byov.cli.features import parse
    with pytest.raises(SystemExit):
        parse(["extract", "--method", "tcc"])
    err = " ".join(capsys.readouterr().err.split())
    assert ("--method is a flag of train.py and evaluate.py, not used by python -m "
            "byov.features extract") in err


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_each_key_is_accepted_where_used_and_refused_elsewhere(entry, capsys):
    parser = parser_of(entry)
    for f in dataclasses.fields(Config):
        argv = ([f"--{'' if f.default else 'no-'}{f.name}"] if f.type in ("bool", bool)
                else [f"--{f.name}", str(f.default)])
        if f.name in used_keys(entry):
            assert getattr(parser.parse_args(argv), f.name) == f.default, f.name
        else:
            msg = refused_message(parser, argv, capsys)
            users = [ENTRY_POINTS[u] for u in f.metadata["used_by"]]
            assert msg.startswith("usage:") and f"--{f.name} is " in msg, msg
            assert all(u in msg for u in users) and f"not used by {ENTRY_POINTS[entry]}" in msg


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_yaml_may_hold_every_key(entry, tmp_path):
    values = {**dataclasses.asdict(Config()), "ckpt": "x.pth", "lr": 3e-4, "eval_mode": "val",
              "dataset": "synthetic"}
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump(values))
    cfg, _ = load_config(["--config", str(path)], parser_of(entry))
    assert (cfg.ckpt, cfg.lr, cfg.eval_mode) == ("x.pth", 3e-4, "val")


def test_argv_for_keeps_what_the_entry_point_uses():
    argv = ["--config", "c.yaml", "--epochs", "5", "--lr=1e-4", "--no-pretrained",
            "--dataset_root", "data dir", "--few_shot", "--json", "m.json", "--tcc_temp", "0.2"]
    assert cfgmod.argv_for("evaluate", argv) == ["--config", "c.yaml", "--no-pretrained",
                                                 "--dataset_root", "data dir", "--few_shot",
                                                 "--json", "m.json"]
    assert cfgmod.argv_for("train", argv) == [a for a in argv if a != "--few_shot"]
    assert cfgmod.argv_for("extract", argv) == ["--config", "c.yaml", "--no-pretrained",
                                                "--dataset_root", "data dir", "--json", "m.json"]


# -- every caller's flags still parse ------------------------------------------------------------

def _literal_flags(text, program):
    """The --flags written after `program` on the command lines of a shell script."""
    flags = set()
    for command in re.sub(r"\\\n\s*", " ", text).splitlines():
        if program in command:
            flags |= set(re.findall(r"(?<![\w-])--[a-z][\w-]*", command.split(program, 1)[1]))
    return flags


def _accepts(parser, flag):
    return flag in parser._option_string_actions and not isinstance(
        parser._option_string_actions[flag], cfgmod._Refused)


def test_run_sh_flags_and_forwarding():
    script = open(os.path.join(ROOT, "scripts", "run.sh")).read()
    for program, entry in (("python evaluate.py", "evaluate"), ("train.py", "train"),
                           ("byov.features extract", "extract")):
        flags = _literal_flags(script, program)
        assert "--config" in flags, program
        parser = parser_of(entry)
        assert all(_accepts(parser, f) for f in flags), (program, flags)
    # run.sh forwards the user's train.py flags to the extraction and evaluate.py through its
    # flags_for: every train.py key given there reaches the others only where they use it
    function = re.search(r"^flags_for\(\) \{.*?\}$", script, re.S | re.M).group(0)
    train_argv = [a for f in dataclasses.fields(Config) if f.name in used_keys("train")
                  for a in ([f"--{f.name}"] if f.type in ("bool", bool)
                            else [f"--{f.name}", str(f.default) or "''"])]
    for entry in ("evaluate", "extract"):
        out = subprocess.run(
            ["bash", "-c", f'{function}\nflags_for {entry} "$@"', "bash", *train_argv],
            capture_output=True, timeout=60,
            env={**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep
                 + os.environ["PATH"]})
        assert out.returncode == 0, out.stderr
        forwarded = out.stdout.decode().split("\0")[:-1]
        assert forwarded == cfgmod.argv_for(entry, train_argv) and forwarded
        parser_of(entry).parse_args(forwarded)  # nothing refused


@pytest.mark.parametrize("name", sorted(
    os.path.relpath(os.path.join(d, n), os.path.join(ROOT, "configs"))
    for d, _, files in os.walk(os.path.join(ROOT, "configs")) if os.path.basename(d) != "grid"
    for n in files if n.endswith(".yaml")))
def test_every_run_config_loads_in_every_entry_point(name):
    path = os.path.join(ROOT, "configs", name)
    for entry in ENTRY_POINTS:
        cfg, _ = load_config(["--config", path], parser_of(entry))
        assert cfg.dataset == yaml.safe_load(open(path)).get("dataset", Config().dataset)


def test_report_location_flags_are_evaluate_flags():
    """The report evaluates through the same library call as evaluate.py, with the run's config
    and its location overrides (--dataset_root, ...): each is a key evaluate.py takes too."""
    from byov.cli.report import build_parser as report_parser
    flags = {a.option_strings[0] for a in report_parser()._actions
             if a.option_strings and a.option_strings[0][2:] in KEYS}
    assert {"--dataset_root", "--frame_cache_dir"} <= flags
    parser = parser_of("evaluate")
    assert {f for f in flags if not _accepts(parser, f)} == set()


def test_grid_jobs_give_each_entry_point_only_its_flags(tmp_path):
    from byov.cli.grid import fit_to_entry_points, make_resolver
    from byov.grid.jobs import MANAGED_KEYS, Capabilities, load_grid, make_jobs

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({"dataset": "synthetic",
                                                        "features": "tokens"}))
    overrides = {k: v for k, v in dataclasses.asdict(Config()).items()
                 if k not in MANAGED_KEYS and k not in ("dataset", "features")}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump({
        "datasets": ["tiny.yaml"], "seeds": [0], "overrides": overrides,
        "baselines": ["time", "frozen", "random_init"], "output_root": str(tmp_path / "b")}))
    jobs = make_jobs(load_grid(str(tmp_path / "grid.yaml")), make_resolver(cfgmod),
                     Capabilities(method_flag=True, baseline_flag=True))
    signatures = [j.signature for j in jobs]
    fit_to_entry_points(jobs, cfgmod)
    assert [j.signature for j in jobs] == signatures
    train_job = jobs[0]
    assert "--lr" in train_job.train_argv and "--lr" not in train_job.eval_argv
    assert "--eval_task" in train_job.eval_argv and "--few_shot" not in train_job.train_argv
    assert train_job.extract_argv and "--epochs" not in train_job.extract_argv
    assert len(jobs) == 4 and all("--baseline" in j.eval_argv for j in jobs[1:])
    for job in jobs:
        for entry, argv in (("train", job.train_argv), ("evaluate", job.eval_argv),
                            ("extract", job.extract_argv)):
            if argv:
                parser_of(entry).parse_args(argv)  # nothing refused


def test_bench_ablation_flags():
    """bench/ablation.py's train.py command and variants, and its evaluate.py calls."""
    source = open(os.path.join(ROOT, "bench", "ablation.py")).read()
    flags = lambda text: set(re.findall(r'"(--[a-z_]+)"', text))  # noqa: E731
    variants = source[source.index("VARIANTS = {"):source.index("\n}\n", source.index(
        "VARIANTS = {"))]
    train_cmd = re.search(r'"train\.py",(.*?)\]', source, re.S).group(1)
    calls = re.findall(r"evaluate\(\[(.*?)\]", source, re.S)
    assert len(calls) >= 2
    for entry, found in (("train", flags(variants) | flags(train_cmd)),
                         ("evaluate", flags(" ".join(calls)) | {"--json"})):
        assert len(found) >= 5, (entry, found)
        parser = parser_of(entry)
        assert {f for f in found if not _accepts(parser, f)} == set(), entry

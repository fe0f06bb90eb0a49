"""Train BYOV.

    python train.py --config configs/break_eggs.yaml [--key value ...]
    torchrun --nproc_per_node=4 train.py --config configs/break_eggs.yaml   # multi-GPU (DDP)
    python train.py --config configs/demo.yaml --resume auto                # continue a run

Settings: utils/config.py (defaults) < --config yaml < command line. The run folder is
--output_dir: config.yaml, log.jsonl, tb/, checkpoints/{last,best,epoch_XXXX}.pth, eval/.
"""
import sys

from utils.config import ConfigError, build_parser, load_config, to_dict


def build_train_parser():
    """train.py's flags: the config keys it uses, by section; evaluate.py's are refused."""
    return build_parser(__doc__.splitlines()[0], entry="train")


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    cfg, _ = load_config(argv, build_train_parser())
    from byov.training import loop as trainer
    return trainer.run(to_dict(cfg), command=["train.py", *argv])


if __name__ == "__main__":
    from byov.cli.interrupt import exit_on_interrupt
    from byov.errors import ByovError
    try:
        with exit_on_interrupt("train.py", "the checkpoints of finished epochs are kept; "
                               "continue with the same command and --resume auto"):
            main()
    except (ConfigError, ByovError) as e:  # the user's input or set-up: the message says the fix
        sys.exit(f"error: {e}")

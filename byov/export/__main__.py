"""python -m byov.export RUN_DIR OUT_DIR [--ckpt best|last|PATH] [--push OWNER/NAME]

Writes OUT_DIR/{model.safetensors, config.json, README.md} from a run folder's checkpoint
(docs/hub.md); --push then uploads the folder to the Hugging Face Hub (needs a token with write
access: `hf auth login` or HF_TOKEN).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys


def main(argv=None) -> dict:
    from byov.cli import import_project_config
    from byov.export import export_run, push_folder

    p = argparse.ArgumentParser(prog="python -m byov.export", description=__doc__.splitlines()[2])
    p.add_argument("run_dir", help="a train.py run folder (--output_dir)")
    p.add_argument("out_dir", help="the export folder to write (new, empty, or an earlier export)")
    p.add_argument("--ckpt", default="best",
                   help="best (else last.pth, as scripts/run.sh), last, or a checkpoint path")
    p.add_argument("--push", metavar="OWNER/NAME", default=None,
                   help="upload the folder to this Hub model repository (needs a token)")
    p.add_argument("--repo_id", metavar="OWNER/NAME", default=None,
                   help="the repository the card's instructions name (default: --push's)")
    p.add_argument("--private", action="store_true", help="with --push: a private repository")
    args = p.parse_args(argv)
    defaults = dataclasses.asdict(import_project_config().Config())
    result = export_run(args.run_dir, args.out_dir, defaults, args.ckpt,
                        repo_id=args.repo_id or args.push)
    print(f"exported {result['checkpoint']} ({', '.join(result['parts'])}; "
          f"{result['tensors']} tensors) to {args.out_dir}")
    if args.push:
        url = push_folder(args.out_dir, args.push, private=args.private)
        print(f"uploaded to {url}; load it with --ckpt hf://{args.push}")
        result["url"] = url
    return result


if __name__ == "__main__":
    from byov.errors import ByovError
    try:
        main()
    except ByovError as e:
        sys.exit(f"python -m byov.export: error: {e}")

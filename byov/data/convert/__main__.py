"""`python -m byov.data.convert FORMAT --annotations A --videos V --out ROOT/NAME [options]`.

Formats and their options: `python -m byov.data.convert FORMAT --help`; what each maps and loses:
docs/datasets/<format>.md.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from byov.data.convert import FORMATS, ConvertError, Options, convert
from byov.data.convert.writer import TRIMS

_MODULES = {"segments": "plain", "egoexo4d-keystep": "egoexo4d", "cmu-mmac": "cmu_mmac",
            "h2o": "h2o", "assembly101": "assembly101", "egoexolearn": "egoexolearn"}


def _module(fmt: str):
    return importlib.import_module(f"byov.data.convert.{_MODULES[fmt]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m byov.data.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="format", required=True, metavar="FORMAT",
                                help=", ".join(FORMATS))
    for fmt in FORMATS:
        module = _module(fmt)
        p = sub.add_parser(fmt, help=module.__doc__.splitlines()[0], description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.add_argument("--out", required=True,
                       help="the dataset folder to write, ROOT/NAME (new or empty, or one this "
                            "tool made with the same command: it resumes)")
        p.add_argument("--trim", choices=TRIMS, default="none",
                       help="none: whole videos (hard-linked); labelled: first to last labelled "
                            "frame; task: the format's task span. Trimmed videos are re-encoded")
        p.add_argument("--copy", action="store_true",
                       help="copy whole videos instead of hard-linking them")
        p.add_argument("--skip_bad", action="store_true",
                       help="report and leave out videos with bad input instead of stopping")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        entries, skipped = _module(args.format).read(args)
        convert(entries, args.out, args.format,
                Options(trim=args.trim, copy=args.copy, skip_bad=args.skip_bad),
                skipped=skipped)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

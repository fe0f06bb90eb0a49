"""Converters from public ego-exo datasets into the AE2 layout (docs/datasets/README.md).

`python -m byov.data.convert FORMAT --annotations ... --videos ... --out ROOT/NAME` reads a
dataset's official files, reduces them to timed segments per video (one module per format) and
writes `ROOT/NAME` in the csv layout through the rules of `segments.py` (frames, background,
clamping, refusals) and `writer.py` (safe, resumable output, validation, summary).
"""
from byov.data.convert.segments import ConvertError, Segment, VideoEntry
from byov.data.convert.writer import Options, convert

FORMATS = ("segments", "egoexo4d-keystep", "cmu-mmac", "h2o", "assembly101", "egoexolearn")

__all__ = ["FORMATS", "ConvertError", "Options", "Segment", "VideoEntry", "convert"]

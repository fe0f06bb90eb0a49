"""A per-run visual report of what a model learned: `python -m byov.report RUN_DIR`.

Writes `RUN_DIR/report/index.html` (self-contained: inline CSS, no JavaScript, figures as PNG files
next to it, referenced by relative path) from the run's checkpoint, embeddings and logs:
training curves, ego<->exo frame alignment, a retrieval gallery, a 2-D embedding map beside the
frozen-backbone (and `time`) baselines, phase progression and per-phase confusion matrices, the
headline metrics table and the resolved config. See docs/report.md.

Modules: `inputs` (the run folder, checkpoint, embeddings, logs), `frames` (thumbnails from the
h5 frame cache), one module per figure family (`curves`, `alignment`, `gallery`,
`embedding_map`, `phases`), `page` (the HTML), `build` (all of it, timed).
"""
from byov.report.build import ReportResult, build_report
from byov.report.inputs import ReportError

__all__ = ["ReportError", "ReportResult", "build_report"]

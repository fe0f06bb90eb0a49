"""Published AE2-benchmark numbers to print beside ours.

Units as in the papers: F1 and mAP@10 x100, progression R^2 and Kendall's tau as is. Columns:
F1 regular / ego2exo / exo2ego, mAP@10 regular / ego2exo / exo2ego, progression, tau.

Sources:
- BYOV Table 1 (Park, Lee, Sohn, "Bootstrap Your Own Views", CVPR 2025; arXiv 2503.19706): BYOV
  with CLIP ViT-B/16 and the frozen CLIP ViT-B/16 features, per dataset. Transcribed from a
  third-party reproduction's notes; re-check against the paper PDF before publishing a comparison.
  Which feature the CLIP row uses (merged patch tokens or the pooled embedding) is not stated.
- PRISM (a later third-party paper), Table 2: AE2 and its baselines, averaged over the four AE2
  datasets (Break Eggs, Pour Milk, Pour Liquid, Tennis Forehand). These are averages, not
  per-dataset values, so they are shown only next to an average of ours over the same four
  datasets. PRISM's CLIP row equals the mean of BYOV's CLIP rows in every column except tau
  (0.047 there, 0.0196 from BYOV Table 1): one of the two is mis-transcribed.
"""
from __future__ import annotations

COLUMNS = ("f1_regular", "f1_ego2exo", "f1_exo2ego", "map10_regular", "map10_ego2exo",
           "map10_exo2ego", "progression", "kendalls_tau")

AE2_DATASETS = ("break_eggs", "pour_milk", "pour_liquid", "tennis_forehand")

BYOV_TABLE1_SOURCE = "BYOV (CVPR 2025) Table 1, CLIP ViT-B/16"

# dataset -> row name -> the 8 columns above
BYOV_TABLE1 = {
    "break_eggs": {
        "BYOV": (74.30, 75.01, 71.28, 67.17, 70.65, 69.02, 0.8533, 0.9451),
        "CLIP ViT-B/16 features": (51.66, 27.97, 26.24, 44.46, 35.85, 35.70, 0.0402, 0.0168),
    },
    "pour_milk": {
        "BYOV": (86.46, 85.09, 86.61, 89.42, 87.73, 85.06, 0.8992, 0.9466),
        "CLIP ViT-B/16 features": (43.24, 49.21, 30.94, 52.16, 46.39, 40.34, -4.0754, 0.0046),
    },
    "pour_liquid": {
        "BYOV": (79.48, 71.83, 76.23, 71.06, 75.03, 70.03, 0.4483, 0.3052),
        "CLIP ViT-B/16 features": (60.60, 36.97, 48.43, 43.63, 47.58, 37.02, -0.3139, -0.0048),
    },
    "tennis_forehand": {
        "BYOV": (89.12, 94.47, 85.73, 90.61, 88.34, 88.94, 0.7881, 0.7852),
        "CLIP ViT-B/16 features": (67.81, 43.41, 44.22, 74.54, 59.57, 52.02, -0.4996, 0.0618),
    },
}

PRISM_AVERAGE_SOURCE = "PRISM Table 2, mean over the 4 AE2 datasets"

# method -> the 8 columns above (PRISM prints them in another order; re-ordered here)
PRISM_AVERAGES = {
    "Random": (32.90, 33.44, 33.46, 53.97, 51.68, 51.20, -0.069, 0.004),
    "TCC": (67.17, 55.90, 52.27, 70.58, 62.08, 65.84, 0.322, 0.400),
    "GTA": (69.63, 63.29, 70.41, 72.42, 66.39, 65.45, 0.322, 0.464),
    "AE2": (75.96, 71.00, 76.44, 75.78, 72.58, 71.25, 0.480, 0.562),
    "CLIP (zero-shot)": (55.83, 39.39, 37.46, 53.70, 47.35, 41.27, -1.212, 0.047),
}


def published_rows(dataset: str) -> dict[str, dict[str, float]]:
    """{row name: {column: value}} of BYOV Table 1 for an AE2 dataset; {} for any other."""
    return {name: dict(zip(COLUMNS, values))
            for name, values in BYOV_TABLE1.get(dataset, {}).items()}


def byov_table1_mean() -> dict[str, dict[str, float]]:
    """The mean over the 4 datasets of each BYOV Table 1 row (comparable to PRISM's averages)."""
    out = {}
    for name in next(iter(BYOV_TABLE1.values())):
        rows = [BYOV_TABLE1[d][name] for d in AE2_DATASETS]
        out[name] = {c: sum(r[i] for r in rows) / len(rows) for i, c in enumerate(COLUMNS)}
    return out


def prism_rows() -> dict[str, dict[str, float]]:
    return {name: dict(zip(COLUMNS, values)) for name, values in PRISM_AVERAGES.items()}

"""Seeded splits for datasets whose official test annotations are withheld (Ego-Exo4D,
Assembly101, EgoExoLearn) or that have no official split (CMU-MMAC)."""
from __future__ import annotations

import random
from typing import Iterable

from byov.data.convert.segments import ConvertError


def carve(keys: Iterable[str], fraction: float, seed: int, what: str) -> set[str]:
    """The keys (takes, sequences, subjects) moved to a held-out split: round(fraction * n),
    at least 1 and at most n - 1, drawn with random.Random(seed) from the sorted keys, so the
    same command always carves the same ones."""
    keys = sorted(set(keys))
    if not 0.0 < fraction < 1.0:
        raise ConvertError(f"the {what} fraction must lie strictly between 0 and 1; got "
                           f"{fraction}")
    if len(keys) < 2:
        raise ConvertError(f"carving a {what} split needs at least 2 groups to choose from; "
                           f"found {len(keys)} ({', '.join(keys) or 'none'}). Select more data")
    n = min(len(keys) - 1, max(1, round(fraction * len(keys))))
    return set(random.Random(seed).sample(keys, n))


def add_carve_arguments(parser, default: float = 0.2) -> None:
    parser.add_argument("--test_fraction", type=float, default=default,
                        help=f"share of the train groups moved to test (default {default})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the carved split")

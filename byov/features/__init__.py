"""The frozen-backbone feature cache (docs/design.md#feature-cache): each frame goes through the backbone once, ever.

`python -m byov.features extract --config FILE` writes it; training reads it with
`--features tokens` (exact: patch tokens, merged over the sampled frames as on the fly) or
`--features merged` (compact: STM over adjacent frames, an approximation at training time).
See docs/data.md (feature cache).
"""
from byov.features.cache import (ArrayWriter, CachedMergedFeatures, FeatureSource, entry_paths,
                                 feature_source, merged_features, verify_cache)
from byov.features.extract import (StreamMerge, ensure_feature_cache, extract_splits,
                                   extract_videos, missing_entries)
from byov.features.manifest import KINDS, FeatureCacheError, expected_manifest, weights_hash

__all__ = [
    "KINDS", "FeatureCacheError", "FeatureSource", "ArrayWriter", "CachedMergedFeatures",
    "StreamMerge", "entry_paths", "expected_manifest",
    "weights_hash", "feature_source", "merged_features", "verify_cache", "extract_videos",
    "extract_splits", "ensure_feature_cache", "missing_entries",
]

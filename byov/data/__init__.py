"""The AE2 data layer: layouts, decoding, the h5 frame cache, preprocessing, sampling, datasets.

See docs/data.md. Every user-facing data problem raises `DataError`.
"""
from byov.data.datasets import FrameSource, PairDataset, VideoFrames
from byov.data.fingerprint import data_fingerprint, file_fingerprint
from byov.data.frame_cache import (ensure_frame_cache, frame_cache_path, is_valid_cache,
                                   read_frames)
from byov.data.layout import (DATASETS, SPLITS, VIEWS, DataError, Video, check_labels,
                              dataset_path, frame_count, list_videos, load_labels)
from byov.data.preprocess import BACKBONES, preprocess_frames
from byov.data.sampling import PAIRINGS, draw_pair, sample_frames
from byov.data.validate import load_validated, validate_dataset
from byov.data.video import decode_frames

__all__ = [
    "DATASETS", "SPLITS", "VIEWS", "BACKBONES", "PAIRINGS", "DataError", "Video", "dataset_path",
    "list_videos", "load_labels", "check_labels", "frame_count", "decode_frames",
    "frame_cache_path", "is_valid_cache", "ensure_frame_cache", "read_frames",
    "preprocess_frames", "sample_frames", "draw_pair", "FrameSource", "PairDataset",
    "VideoFrames", "file_fingerprint", "data_fingerprint", "load_validated", "validate_dataset",
]

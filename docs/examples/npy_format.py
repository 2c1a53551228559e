"""A ``.npy`` data format in one file (plus ``configs/data/npy.yaml``): unlabelled images.

Copy this file to ``ssl_fed/data/formats/npy.py`` (every module there is imported), or keep it
anywhere and name it in ``SSL_FED_PLUGINS``. The file holds one array ``[N, H, W]`` (grayscale)
of ``uint8`` (scaled by 1/255) or floats in ``[0, 1]``. ``docs/extending.md`` walks through it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssl_fed.config import DataConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.images import convert_channels, resize_images
from ssl_fed.data.registry import register_path_format
from ssl_fed.data.validation import DataError, validate_images


@register_path_format("npy")
def load_npy(cfg: DataConfig, path: str) -> ImageDataset:
    """Load ``[N, H, W]`` images from one ``.npy`` file, resized to ``cfg.image_size``."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data.path={file} does not exist; point it at a .npy file.")
    array = np.load(file, allow_pickle=False)
    if array.ndim != 3:
        raise DataError(f"{file}: expected [N, H, W] images, got shape {array.shape}.")
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    images = torch.from_numpy(array.astype(np.float32) / scale).unsqueeze(1)
    validate_images(images, str(file))
    images = convert_channels(resize_images(images, cfg.image_size), cfg.channels)
    return ImageDataset(images.contiguous(), None, str(file))

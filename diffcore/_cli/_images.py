"""Photographs in and out: load, shrink to a stated bound, scale to [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ._errors import InputError

# The photograph that ships with matplotlib (Grace Hopper, 512 x 600 pixels).
SAMPLE_PHOTO = "grace_hopper.jpg"


def sample_photo() -> Path:
    """Path of the photograph bundled with matplotlib's sample data."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data(SAMPLE_PHOTO, asfileobj=False))


def load_image(path: Path, max_side: int) -> NDArray[np.float32]:
    """The image at ``path`` as float32 of shape (3, H, W) in [-1, 1].

    Any format Pillow reads; images whose longest side exceeds ``max_side``
    are shrunk (Lanczos, aspect ratio kept) so that it equals ``max_side``.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at low size
            rgb = image.convert("RGB")
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            pixels = np.asarray(rgb, dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        msg = f"cannot read the image {path}: {error}"
        raise InputError(msg) from None

    # Pixel values 0..255 map to [-1, 1], the scale diffusion models use.
    return np.ascontiguousarray(np.moveaxis(pixels / 127.5 - 1.0, -1, 0))

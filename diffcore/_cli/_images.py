"""Photographs in and out: load, shrink to a stated bound, scale to [-1, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import click
import numpy as np
from numpy.typing import NDArray

from ._errors import InputError

if TYPE_CHECKING:
    from PIL import Image

# The photograph that ships with matplotlib (Grace Hopper, 512 x 600 pixels).
SAMPLE_PHOTO = "grace_hopper.jpg"

# Pillow's single-channel modes with more than 8 bits a pixel.
WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


class Photo(NamedTuple):
    """An image as x_0 and the stored pixel values that became -1 and 1."""

    x_0: NDArray[np.float32]
    black: float
    white: float
    integer: bool

    def stored_value(self, x: float) -> str:
        """The pixel value in the file that became ``x`` in [-1, 1]."""
        value = self.black + (x + 1.0) / 2.0 * (self.white - self.black)
        return str(round(value)) if self.integer else f"{value:.6g}"


def sample_photo() -> Path:
    """Path of the photograph bundled with matplotlib's sample data."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data(SAMPLE_PHOTO, asfileobj=False))


def load_image(path: Path, max_side: int) -> Photo:
    """The image at ``path`` as float32 x_0 of shape (3, H, W) in [-1, 1].

    Any format Pillow reads; images whose longest side exceeds ``max_side``
    are shrunk (Lanczos, aspect ratio kept) so that it equals ``max_side``.

    Pixel values map linearly onto [-1, 1]: 8-bit images (and palette,
    1-bit, RGBA, CMYK, ...) by 0..255; 16-bit images by 0..65535; 32-bit
    integer images (mode "I") by 0..65535 when every value lies there,
    otherwise by min(0, smallest)..largest; float images (mode "F") by 0..1
    when every value lies there, otherwise by their smallest..largest value.
    NaN or infinite values are refused.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode in WIDE_MODES:
                return _load_wide(path, image, max_side)
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at low size
            rgb = image.convert("RGB")
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            pixels = np.asarray(rgb, dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        msg = f"cannot read the image {path}: {error}"
        raise InputError(msg) from None

    # Pixel values 0..255 map to [-1, 1], the scale diffusion models use.
    x_0 = np.ascontiguousarray(np.moveaxis(pixels / 127.5 - 1.0, -1, 0))
    return Photo(x_0, 0.0, 255.0, integer=True)


def _load_wide(path: Path, image: Image.Image, max_side: int) -> Photo:
    """A 16-bit, 32-bit or float grey image, scaled by its depth or range."""
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    black, white = _value_range(path, image.mode, values)
    scale = white - black if white > black else 1.0

    unit = ((values - black) / scale).astype(np.float32)
    grey = Image.fromarray(unit)  # float32: mode "F"
    grey.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)

    # Lanczos overshoots at edges; keep x_0 inside [-1, 1].
    plane = np.clip(np.asarray(grey, dtype=np.float32), 0.0, 1.0) * 2.0 - 1.0
    x_0 = np.ascontiguousarray(np.broadcast_to(plane, (3, *plane.shape)))
    return Photo(x_0, black, black + scale, integer=image.mode != "F")


def _value_range(
    path: Path, mode: str, values: NDArray[np.float64]
) -> tuple[float, float]:
    """The stored values that become -1 and 1 (see ``load_image``)."""
    if mode.startswith("I;16"):
        return 0.0, 65535.0

    if not np.isfinite(values).all():
        msg = f"the image {path} holds NaN or infinite pixel values"
        raise click.BadParameter(msg, param_hint="'--image'")

    low, high = float(values.min()), float(values.max())
    if mode == "I":
        if low >= 0.0 and high <= 65535.0:
            return 0.0, 65535.0
        return min(low, 0.0), high
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    return low, high

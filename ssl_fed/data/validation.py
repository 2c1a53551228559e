"""Boundary checks shared by every loader, so nothing is trained on garbage.

A site's data arrive from outside the program (a folder, an ``.npz`` written by someone else), so
every loader runs these checks before it returns. Each failure is a :class:`DataError` whose
message says what is wrong, where (the file or field), and how to fix it; a silent NaN or an
image in ``[0, 255]`` would otherwise train a useless encoder while spending privacy budget.
"""

from __future__ import annotations

import torch

_LAYOUTS = "[N, C, H, W] after loading (npz accepts [N, H, W], [N, H, W, C] or [N, C, H, W])"


class DataError(ValueError):
    """Site data are unusable; the message names what is wrong, where, and the fix."""


def validate_images(images: torch.Tensor, source: str) -> None:
    """Check that ``images`` is a non-empty, finite float batch ``[N, C, H, W]`` in ``[0, 1]``.

    Parameters
    ----------
    images : torch.Tensor
        The loaded images.
    source : str
        Where they came from (a path or dataset name); quoted in every error message.

    Raises
    ------
    DataError
        On a wrong rank, an empty dataset, a channel count other than 1 or 3, NaN/Inf values,
        or values outside ``[0, 1]``.

    Notes
    -----
    The checks run in this order because each later check assumes the earlier ones: the
    channel check needs rank 4, and the range check is meaningless with NaNs present.
    """
    if images.ndim != 4:
        raise DataError(
            f"{source}: images have rank {images.ndim} (shape {tuple(images.shape)}); "
            f"expected {_LAYOUTS}. Reshape or re-export the images."
        )
    if images.shape[0] < 1:
        raise DataError(
            f"{source}: the dataset is empty (0 images). Put PNG/JPEG files (or class "
            "sub-folders of them) in the folder, or non-empty arrays in the .npz."
        )
    channels = int(images.shape[1])
    if channels not in (1, 3):
        raise DataError(
            f"{source}: images have {channels} channels (shape {tuple(images.shape)}); "
            "expected 1 (grayscale) or 3 (RGB). Drop alpha/extra channels before export."
        )
    if not images.is_floating_point():
        raise DataError(f"{source}: images have dtype {images.dtype}; expected floats in [0, 1].")
    finite = torch.isfinite(images).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()
        raise DataError(
            f"{source}: {bad.numel()} image(s) contain NaN or Inf values (first bad index "
            f"{int(bad[0])}). Remove or repair those images before training."
        )
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise DataError(
            f"{source}: pixel values span [{low:g}, {high:g}]; expected [0, 1]. Store uint8 "
            "0..255 (scaled automatically) or floats already divided by their maximum."
        )


def validate_labels(labels: torch.Tensor | None, num_images: int, source: str) -> None:
    """Check that ``labels`` (if any) are ``num_images`` non-negative integers.

    Parameters
    ----------
    labels : torch.Tensor or None
        Class labels, or ``None`` for unlabelled data (which is always valid).
    num_images : int
        The number of images the labels must match one to one.
    source : str
        Where the labels came from; quoted in every error message.

    Raises
    ------
    DataError
        On a wrong shape, a non-integer dtype, a length mismatch or negative labels.
    """
    if labels is None:
        return
    if labels.ndim != 1:
        raise DataError(
            f"{source}: labels have shape {tuple(labels.shape)}; expected [N] "
            "(one integer class per image)."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(
            f"{source}: labels have dtype {labels.dtype}; expected integers. "
            "Store class ids as an int array."
        )
    if labels.shape[0] != num_images:
        raise DataError(
            f"{source}: {labels.shape[0]} labels for {num_images} images; "
            "they must match one to one."
        )
    if labels.numel() > 0 and int(labels.min()) < 0:
        raise DataError(
            f"{source}: labels contain negative values (min {int(labels.min())}); "
            "use class ids 0..K-1."
        )

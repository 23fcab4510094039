"""How an image's power falls off with spatial frequency: a figure of readability that
needs no model.

The power spectra of natural photographs, averaged over orientation, fall off roughly as
``1 / f^2`` (Field, "Relations between the statistics of natural images and the response
properties of cortical cells", JOSA A 1987; van der Schaaf & van Hateren, Vision
Research 1996): on log-log axes a line of slope near -2. White noise is flat (slope 0),
and an icon of busy, checkerboard-like texture keeps much of its power at the highest
frequencies, so its slope lies well above the photographs'. :func:`spectrum_slope` fits
that line for a batch of images.
"""

from __future__ import annotations

import numpy as np

# Luminance weights of ITU-R BT.601, as Pillow's "L" conversion.
LUMA = np.array([0.299, 0.587, 0.114])
LOWEST_RING = 2  # rings below it hold the window's own leakage and the image's layout


def luminance(images: np.ndarray) -> np.ndarray:
    """(N, H, W) float64 luminance in [0, 1] of images (N, H, W, 3) or (N, H, W), uint8
    (0-255) or float (0-1)."""
    images = np.asarray(images)
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    values = images.astype(np.float64) / scale
    return values @ LUMA if values.ndim == 4 else values


def radial_power(image: np.ndarray) -> np.ndarray:
    """The power spectrum of a square image (S, S), its mean removed and a Hann window
    applied (so the image's edges do not add power of their own), averaged over rings of
    integer radius: entry ``r`` is the mean power at ``r`` cycles per image, for r = 0 to
    the corners' radius (the rings past S // 2 are the corners, where a checkerboard's
    power lies)."""
    side = image.shape[0]
    window = np.outer(np.hanning(side), np.hanning(side))
    power = np.abs(np.fft.fft2((image - image.mean()) * window)) ** 2
    frequency = np.fft.fftfreq(side) * side
    radius = np.rint(np.hypot(*np.meshgrid(frequency, frequency, indexing="ij"))).astype(int)
    sums = np.bincount(radius.ravel(), weights=power.ravel())
    counts = np.bincount(radius.ravel())
    return sums / np.maximum(counts, 1)


def spectrum_slope(images: np.ndarray) -> np.ndarray:
    """Per image (N, H, W[, 3]), the slope of its radially averaged power spectrum on
    log-log axes: the exponent ``a`` of power ~ ``f^a``, fitted by least squares over the
    rings from 2 cycles per image to the corners (about -2 for photographs, 0 for white
    noise). Non-square images are cut to their central square; NaN for an image
    without contrast."""
    values = luminance(images)
    side = min(values.shape[1:3])
    top, left = (values.shape[1] - side) // 2, (values.shape[2] - side) // 2
    values = values[:, top : top + side, left : left + side]
    rings = np.arange(LOWEST_RING, len(radial_power(np.zeros((side, side)))))
    slopes = np.full(len(values), np.nan)
    if len(rings) < 2:
        return slopes
    log_f = np.log(rings)
    for i, image in enumerate(values):
        power = radial_power(image)[rings]
        if np.all(power > 0):
            slopes[i] = np.polyfit(log_f, np.log(power), 1)[0]
    return slopes

"""The robustness transforms as matrices: Lucent's numbers at a fraction of the cost.

Lucent's standard set (pad 12, jitter 8, scale 0.90-1.10, rotate up to 10 degrees, jitter
4) resamples the image four times per optimization step with general-purpose warps
(kornia's grid sampling, torch's bilinear upsampling). On the CPU their forward and
backward passes cost a quarter of a render step, most of it in grid sampling's backward
pass, which scatters into the image one output pixel at a time.

Once its random draw is made, each of these transforms is a fixed linear map of the
pixels (plus, for a constant pad, a constant image). The pad, the first jitter and the
rescale act on rows and columns apart: each is a pair of small matrices, multiplied
together before they touch the image, and the batch goes through two matrix products.
The rotation (and :class:`RandomAffine`, the pipeline's one warp) is a sparse matrix of
four bilinear taps per output pixel, with its transpose for the backward pass. The last
jitter is a shift by a fraction of a pixel: two shifted copies, blended.

The sampling positions are kornia's (``warp_affine`` with ``align_corners=False``, the
default Lucent calls it with), so kornia 0.4's pixel convention carries over: a
"whole-pixel" jitter of ``d`` px on an ``n`` px image moves it ``d * n / (n - 1)`` px,
blending neighbours. The draws are Lucent's, from NumPy's global generator in Lucent's
order, so a seeded render sees the transforms Lucent would; the tests hold the outputs,
their gradients and the generator's state to Lucent's (tests/featvis/test_warps.py).

Drawing and applying are apart (:meth:`LucentSet.draw`, :class:`Warp`): the draw is a
few NumPy operations, made under the lock that guards the global generator, and the
products run outside it, in parallel with other render threads. Written here because no
library offers these warps as matrices; kornia and torch compute the same maps pixel by
pixel.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

LUCENT_SCALES = tuple(1 + (i - 5) / 50.0 for i in range(11))
LUCENT_ANGLES = tuple(range(-10, 11)) + 5 * (0,)


def _affine_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix, written out (no BLAS: see :func:`_mm`)."""
    (a, b, tx), (c, d, ty) = matrix
    det = a * d - b * c
    return np.array(
        [[d / det, -b / det, (b * ty - d * tx) / det], [-c / det, a / det, (c * tx - a * ty) / det]]
    )


def kornia_pixels(
    matrix: np.ndarray, shape: tuple[int, int], image: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The input pixel positions (x, y), each of ``shape``, that kornia's ``warp_affine``
    (``align_corners=False``) samples with the 2x3 pixel matrix ``matrix`` for the first
    ``shape`` output pixels of an image of ``image`` (default: ``shape``), in and out.
    kornia normalizes pixels with ``n - 1`` and grid sampling reads them with ``n``: the
    matrix acts on pixel centres scaled by ``(n - 1) / n``."""
    h, w = image or shape
    scale = np.array([(w - 1) / w, (h - 1) / h])
    inverse = _affine_inverse(matrix)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    x, y = (x + 0.5) * scale[0], (y + 0.5) * scale[1]
    x_in = (inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]) / scale[0] - 0.5
    y_in = (inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]) / scale[1] - 0.5
    return x_in, y_in


def grid_pixels(theta: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The input pixel positions (x, y) that ``grid_sample`` (``align_corners=False``)
    reads on the grid ``affine_grid`` makes of the normalized 2x3 matrix ``theta``."""
    h, w = shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = (2 * u + 1) / w - 1, (2 * v + 1) / h - 1
    gx = theta[0, 0] * u + theta[0, 1] * v + theta[0, 2]
    gy = theta[1, 0] * u + theta[1, 1] * v + theta[1, 2]
    return ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2


def rotation(shape: tuple[int, int], degrees: float) -> np.ndarray:
    """kornia's ``get_rotation_matrix2d`` (OpenCV's convention: counter-clockwise, y
    down) about the centre of an image of ``shape``, as Lucent's ``random_rotate`` calls
    it: the 2x3 pixel matrix."""
    h, w = shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a, b = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy]])


def _line(positions: np.ndarray, size: int) -> np.ndarray:
    """(len(positions), size): bilinear sampling of a line of ``size`` pixels (centres at
    0, 1, ...) at ``positions``, zero outside it."""
    matrix = np.zeros((len(positions), size))
    low = np.floor(positions).astype(np.int64)
    frac = positions - low
    rows = np.arange(len(positions))
    for index, weight in ((low, 1 - frac), (low + 1, frac)):
        inside = (index >= 0) & (index < size)
        matrix[rows[inside], index[inside]] += weight[inside]
    return matrix


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` by torch. The draws run in every render thread at once, and NumPy's BLAS
    called from several threads costs them dearly: the per-core render benchmark ran 7.8
    icons/s with NumPy's products here against 11-13 with torch's (one torch thread each)."""
    a, b = (torch.from_numpy(np.ascontiguousarray(m)) for m in (a, b))
    return (a @ b).numpy()


@dataclass
class Separable:
    """``rows @ image @ cols.T + constant``: a map acting on rows and columns apart."""

    rows: np.ndarray  # (h_out, h_in)
    cols: np.ndarray  # (w_out, w_in)
    constant: np.ndarray | None = None  # (h_out, w_out)

    @classmethod
    def identity(cls, shape: tuple[int, int]) -> Separable:
        return cls(np.eye(shape[0]), np.eye(shape[1]))

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.shape[0], self.cols.shape[0]

    def then(self, other: Separable) -> Separable:
        """This map followed by ``other``, as one map."""
        constant = other.constant
        if self.constant is not None:
            carried = _mm(_mm(other.rows, self.constant), other.cols.T)
            constant = carried if constant is None else carried + constant
        return Separable(_mm(other.rows, self.rows), _mm(other.cols, self.cols), constant)


def pad(shape: tuple[int, int], top: int, bottom: int, left: int, right: int, value: float):
    """torch's constant ``pad``, as a :class:`Separable`."""
    h, w = shape
    rows = np.eye(top + h + bottom, h, -top)
    cols = np.eye(left + w + right, w, -left)
    border = 1 - np.outer(rows.sum(1), cols.sum(1))
    return Separable(rows, cols, value * border if value else None)


def translation(shape: tuple[int, int], dx: float, dy: float) -> tuple[float, float]:
    """How far (x, y) kornia's ``translate`` by (``dx``, ``dy``) px moves an image of
    ``shape``: output pixel j samples the input at j minus this."""
    x, y = kornia_pixels(np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), (1, 1), shape)
    return float(-x[0, 0]), float(-y[0, 0])


def translate(shape: tuple[int, int], dx: float, dy: float) -> Separable:
    """kornia's ``translate`` (bilinear, zero where the image left), as a :class:`Separable`."""
    sx, sy = translation(shape, dx, dy)
    h, w = shape
    return Separable(_line(np.arange(h) - sy, h), _line(np.arange(w) - sx, w))


def upsample(shape: tuple[int, int], size: tuple[int, int]) -> Separable:
    """torch's bilinear ``interpolate`` to ``size`` with ``align_corners=True``."""

    def positions(n_in: int, n_out: int) -> np.ndarray:
        return np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)

    return Separable(
        _line(positions(shape[0], size[0]), shape[0]),
        _line(positions(shape[1], size[1]), shape[1]),
    )


@dataclass
class Resample:
    """Bilinear sampling of an image of ``shape`` at given pixel positions, zero outside,
    as a sparse matrix of the flattened pixels (row = output pixel) in CSR arrays, with
    its transpose for the backward pass."""

    shape: tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    t_indptr: np.ndarray
    t_indices: np.ndarray
    t_weights: np.ndarray

    @classmethod
    def at(cls, x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> Resample:
        h, w = shape
        x, y = x.ravel(), y.ravel()
        x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
        fx, fy = x - x0, y - y0
        # Four taps per output pixel, in increasing input order: (y0, x0), (y0, x0 + 1),
        # (y0 + 1, x0), (y0 + 1, x0 + 1); those outside the image or of weight 0 dropped.
        xs = np.stack([x0, x0 + 1, x0, x0 + 1], axis=1)
        ys = np.stack([y0, y0, y0 + 1, y0 + 1], axis=1)
        weights = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], axis=1)
        keep = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h) & (weights != 0)
        indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
        indices, weights = (ys * w + xs)[keep], weights[keep]
        rows = np.repeat(np.arange(len(x)), keep.sum(axis=1))
        # By input pixel, then output pixel; NumPy radix-sorts 16-bit keys (images up to
        # 65,536 pixels), ten times faster than a comparison sort.
        keys = indices.astype(np.uint16) if h * w <= 2**16 else indices
        order = np.argsort(keys, kind="stable")
        t_indptr = np.concatenate([[0], np.cumsum(np.bincount(indices, minlength=h * w))])
        return cls(shape, indptr, indices, weights, t_indptr, rows[order], weights[order])

    def sums(self) -> np.ndarray:
        """Each output pixel's total weight (1 inside the image, less near its edge)."""
        return np.add.reduceat(np.append(self.weights, 0.0), self.indptr[:-1]) * (
            np.diff(self.indptr) > 0
        )

    def tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.shape[0] * self.shape[1]
        n_out = len(self.indptr) - 1
        return (
            _csr(self.indptr, self.indices, self.weights, (n_out, n), like),
            _csr(self.t_indptr, self.t_indices, self.t_weights, (n, n_out), like),
        )


def _csr(indptr, indices, weights, shape, like: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr),
            torch.from_numpy(indices),
            torch.as_tensor(weights, dtype=like.dtype),
            shape,
            device=like.device,
            check_invariants=False,  # sorted and in range by construction
        )


class _SparseMatmul(torch.autograd.Function):
    """``matrix @ planes`` with ``transposed @ grad`` for the backward pass."""

    @staticmethod
    def forward(ctx, planes, matrix, transposed):
        ctx.transposed = transposed
        return matrix @ planes

    @staticmethod
    def backward(ctx, grad):
        return ctx.transposed @ grad.contiguous(), None, None


def _shift(planes: torch.Tensor, dim: int, amount: float) -> torch.Tensor:
    """``planes`` moved by ``amount`` px along ``dim`` (0 or 1 of (H, W, planes)):
    output j samples the input at j - ``amount``, bilinear, zero outside."""
    whole = int(np.floor(amount))
    frac = amount - whole

    def moved(k: int) -> torch.Tensor:
        spec = [0, 0, 0, 0, 0, 0]
        spec[4 - 2 * dim], spec[5 - 2 * dim] = k, -k
        return torch.nn.functional.pad(planes, spec) if k else planes

    return moved(whole) if frac == 0 else (1 - frac) * moved(whole) + frac * moved(whole + 1)


@dataclass
class Warp:
    """One draw of a transform: a linear map of images plus a constant, applied to a batch
    (B, C, H, W) with every (batch, channel) plane as a column of matrix products. In
    order: ``separable`` (a :class:`Separable`), ``resample`` (a :class:`Resample` of the
    flattened pixels, then ``offset``, one value per output pixel, added), ``shift`` (x, y
    px, :func:`_shift`)."""

    separable: Separable | None = None
    resample: Resample | None = None
    offset: np.ndarray | None = None
    shift: tuple[float, float] | None = None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image.shape

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array, dtype=image.dtype, device=image.device)

        planes = image.permute(2, 3, 0, 1).reshape(h, w, b * c)
        if self.separable is not None:
            rows, cols, constant = self.separable.rows, self.separable.cols, self.separable.constant
            h, w = self.separable.shape
            planes = (tensor(rows) @ planes.reshape(planes.shape[0], -1)).reshape(h, -1, b * c)
            planes = tensor(cols) @ planes
            if constant is not None:
                planes = planes + tensor(constant)[..., None]
        if self.resample is not None:
            h, w = self.resample.shape
            flat = planes.reshape(h * w, b * c).contiguous()
            flat = _SparseMatmul.apply(flat, *self.resample.tensors(image))
            if self.offset is not None:
                flat = flat + tensor(self.offset)[:, None]
            planes = flat.reshape(h, w, b * c)
        if self.shift is not None:
            planes = _shift(_shift(planes, 0, self.shift[1]), 1, self.shift[0])
        return planes.reshape(h, w, b, c).permute(2, 3, 0, 1)

    def shape_out(self, shape: tuple[int, int]) -> tuple[int, int]:
        if self.resample is not None:
            return self.resample.shape
        return self.separable.shape if self.separable is not None else shape


class Drawn:
    """A transform whose random draw and whose application are apart: ``draw(shape)``
    gives the :class:`Warp` for the next call (its draws from NumPy's global generator)."""

    def draw(self, shape: tuple[int, int]) -> Warp:
        raise NotImplementedError

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.draw(tuple(image.shape[-2:]))(image)


@dataclass(frozen=True)
class LucentSet(Drawn):
    """Lucent's standard transforms (``lucent.optvis.transform.standard_transforms``): a
    constant pad of ``pad`` px, a jitter of up to ``first_jitter`` - 1 px, a rescale by
    one of ``scales``, a rotation by one of ``angles`` (degrees), a jitter of up to
    ``last_jitter`` - 1 px. A pad of 0 or a jitter under 2 is left out, draws and all."""

    pad: int = 12
    first_jitter: int = 8
    scales: Sequence[float] = LUCENT_SCALES
    angles: Sequence[float] = LUCENT_ANGLES
    last_jitter: int = 4
    pad_value: float = 0.5

    def draw(self, shape: tuple[int, int]) -> Warp:
        chain = Separable.identity(shape)
        if self.pad:
            chain = chain.then(pad(shape, *(4 * [self.pad]), self.pad_value))
        if self.first_jitter > 1:
            chain = chain.then(translate(chain.shape, *self._jitter(self.first_jitter)))
        chain = chain.then(self._scale(chain.shape))
        shape = chain.shape
        angle = np.random.choice(self.angles)
        # A rotation by 0 is kornia's identity up to float rounding: left out.
        turn = Resample.at(*kornia_pixels(rotation(shape, angle), shape), shape) if angle else None
        last = translation(shape, *self._jitter(self.last_jitter)) if self.last_jitter > 1 else None
        return Warp(chain, turn, shift=last)

    @staticmethod
    def _jitter(d: int) -> tuple[float, float]:
        dx = np.random.choice(d)
        dy = np.random.choice(d)
        return float(dx), float(dy)

    def _scale(self, shape: tuple[int, int]) -> Separable:
        # As Lucent's random_scale: sizes rounded up, then a zero pad of
        # [pad_y, pad_x, pad_y, pad_x] (left, right, top, bottom in torch's order).
        scale = np.random.choice(self.scales)
        size = tuple(int(np.ceil(scale * d)) for d in shape)
        pad_x = max(0, int(np.ceil((shape[1] - size[1]) / 2)))
        pad_y = max(0, int(np.ceil((shape[0] - size[0]) / 2)))
        return upsample(shape, size).then(pad(size, pad_y, pad_x, pad_y, pad_x, 0.0))


@dataclass(frozen=True)
class RandomAffine(Drawn):
    """One random affine warp per step, shared by the batch: a shift of up to ``shift`` px
    each way, a zoom in ``scale`` and a rotation of up to ``degrees`` about the centre, in a
    single bilinear resampling; what moves in from outside is the initial grey. Lucent's
    standard set does the same with three resamplings and an upsampling, and changes the
    image's size. The draws come from NumPy's global generator, as Lucent's do (a render
    swaps in its own: :func:`atlas.featvis.seeding.seeded`). With ``pad``, the image is
    first framed by that many px of grey on every side (the output is that much larger),
    so that what the warp moves out of the image is still seen, as Lucid's atlas pads."""

    shift: int = 1
    scale: tuple[float, float] = (0.95, 1.05)
    degrees: float = 5.0
    grey: float = 0.5
    pad: int = 0

    def draw(self, shape: tuple[int, int]) -> Warp:
        frame = pad(shape, *(4 * [self.pad]), self.grey) if self.pad else None
        shape = frame.shape if frame is not None else shape
        h, w = shape
        zoom = np.random.uniform(*self.scale)
        angle = np.deg2rad(np.random.uniform(-self.degrees, self.degrees))
        dx, dy = np.random.randint(-self.shift, self.shift + 1, 2) if self.shift else (0, 0)
        # Output position u (normalized to [-1, 1]) samples the input at A (u - t).
        cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
        matrix = np.array([[cos, -sin * h / w], [sin * w / h, cos]])
        offset = np.array([2 * dx / w, 2 * dy / h])
        shift = -(matrix[:, 0] * offset[0] + matrix[:, 1] * offset[1])
        theta = np.concatenate([matrix, shift[:, None]], axis=1)
        resample = Resample.at(*grid_pixels(theta, shape), shape)
        # (image - grey) resampled, plus grey: the grey fills what came from outside.
        return Warp(frame, resample, offset=self.grey * (1 - resample.sums()))

"""One-pass affine resampling for images (bilinear/nearest) and masks (nearest).

Coordinates are *continuous*: pixel ``(row i, col j)`` covers ``[j, j+1) x [i, i+1)``
and its centre is ``(j + 0.5, i + 0.5)`` — the convention of Pillow, of
pascal_voc boxes and of the geometric matrices in ``geometric.py``. A matrix
here is a 3x3 *forward* map ``input (x, y, 1) -> output (x', y', 1)``; the
resampler inverts it once and, for every output pixel, samples the input
(the grid and kernels are in ``resample.py``).

Why not ``PIL.Image.transform``: its bilinear filter costs ~16 ns per pixel
(double math per band through a function pointer); the uint8 kernel here
interpolates all channels of a pixel with one integer multiply-add per
neighbour (see ``resample.py``).

Border modes: ``constant`` (the image is extended with ``fill`` and
interpolated against it, like OpenCV's BORDER_CONSTANT), ``edge`` (replicate),
``reflect`` (mirror without repeating the edge pixel, ``np.pad``'s "reflect",
OpenCV's REFLECT_101) and ``symmetric`` (mirror repeating it).
"""
from __future__ import annotations

import math

import numpy as np

from core.augment.lut import apply_lut
from core.augment.resample import FIX_U8, Grid, bilinear_float, bilinear_u8, fill_vector, nearest

BORDER_MODES = ("constant", "edge", "reflect", "symmetric")
INTERPOLATIONS = ("nearest", "bilinear")


# --------------------------------------------------------------------------- matrices
def identity() -> np.ndarray:
    return np.eye(3)


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def rotation(degrees: float) -> np.ndarray:
    """Counter-clockwise on screen (y points down), about the origin."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def shearing(sx_degrees: float, sy_degrees: float = 0.0) -> np.ndarray:
    return np.array([[1.0, math.tan(math.radians(sx_degrees)), 0.0],
                     [math.tan(math.radians(sy_degrees)), 1.0, 0.0], [0.0, 0.0, 1.0]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply the 3x3 affine ``matrix`` to ``points`` ``(N, 2)`` (x, y); returns ``(N, 2)`` float64."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:2, :2].T + matrix[:2, 2]


# --------------------------------------------------------------------------- helpers
def check_border(border: str, where: str) -> str:
    if border not in BORDER_MODES:
        raise ValueError(f"{where}: border must be one of {', '.join(BORDER_MODES)}, got {border!r}")
    return border


def check_interpolation(interpolation: str, where: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{where}: interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                         f"got {interpolation!r}")
    return interpolation


def pad_array(arr: np.ndarray, top: int, bottom: int, left: int, right: int, border: str, fill=0):
    """Pad the first two axes of ``arr`` (H, W[, C]) with a border mode; ``fill`` per channel."""
    if top == bottom == left == right == 0:
        return arr
    if border == "constant":
        h, w = arr.shape[:2]
        out = np.empty((h + top + bottom, w + left + right) + arr.shape[2:], arr.dtype)
        channels = arr.shape[2] if arr.ndim == 3 else 1
        vec = fill_vector(fill, channels, arr.dtype)
        out[...] = vec if arr.ndim == 3 else vec[0]
        out[top:top + h, left:left + w] = arr
        return out
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, widths, mode=border)


def _as_3d(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 3 else arr[:, :, None]


def index_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a forward continuous-coordinate matrix, expressed on pixel *indices* (3x3).

    Output index ``(j, i)`` maps to input index ``u = A @ (j, i) + t``: the
    continuous inverse conjugated by the half-pixel shift.
    """
    return np.array(_index_map(matrix) + ((0.0, 0.0, 1.0),))


def _index_map(matrix) -> tuple:
    """``index_affine`` as rows ``((a, b, c), (d, e, f))`` of Python floats: closed form on
    floats, because this runs once per image, where numpy call overhead would show."""
    (a, b, c), (d, e, f) = np.asarray(matrix, dtype=np.float64)[:2].tolist()
    det = a * e - b * d
    if det == 0 or not math.isfinite(det):
        raise ValueError(f"warp: the matrix {[[a, b, c], [d, e, f]]} is not invertible")
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    ic, if_ = -(ia * c + ib * f), -(id_ * c + ie * f)
    # u = inv(x + 0.5) - 0.5
    return (ia, ib, ic + 0.5 * (ia + ib) - 0.5), (id_, ie, if_ + 0.5 * (id_ + ie) - 0.5)


def _integer_map(inv):
    """``(transpose, sy, sx, ty, tx)`` when ``inv`` (rows of ``_index_map``) only permutes/flips
    pixels, else None."""
    (a, b, tx), (d, e, ty) = inv
    if any(abs(v - round(v)) > 1e-9 for v in (a, b, d, e)) or any(abs(v - round(v)) > 1e-6 for v in (tx, ty)):
        return None
    a, b, d, e, tx, ty = (int(round(v)) for v in (a, b, d, e, tx, ty))
    if b == 0 and d == 0 and abs(a) == 1 and abs(e) == 1:
        return False, e, a, ty, tx
    if a == 0 and e == 0 and abs(b) == 1 and abs(d) == 1:
        # u = b*i + tx, v = d*j + ty: in the transposed source, rows follow j.
        return True, b, d, tx, ty
    return None


def _min_singular_value(a: float, b: float, d: float, e: float) -> float:
    """Smallest singular value of [[a, b], [d, e]] (closed form)."""
    t = a * a + b * b + d * d + e * e
    det = a * e - b * d
    return math.sqrt(max(0.0, (t - math.sqrt(max(0.0, t * t - 4 * det * det))) / 2))


def _slice_warp(src: np.ndarray, mapping, out_shape, border: str, fill) -> np.ndarray:
    """Exact warp for flips / integer shifts / 90-degree turns: slicing plus padding."""
    transpose, sr, sc, tr, tc = mapping
    if transpose:
        src = src.swapaxes(0, 1)
    oh, ow = out_shape
    h, w = src.shape[:2]
    rows = (tr, tr + sr * (oh - 1))
    cols = (tc, tc + sc * (ow - 1))
    top, bottom = max(0, -min(rows)), max(0, max(rows) - (h - 1))
    left, right = max(0, -min(cols)), max(0, max(cols) - (w - 1))
    src = pad_array(src, top, bottom, left, right, border, fill)
    r0, c0 = tr + top, tc + left
    rsl = slice(r0, r0 + oh) if sr > 0 else slice(r0, None, -1)
    csl = slice(c0, c0 + ow) if sc > 0 else slice(c0, None, -1)
    return src[rsl, csl][:oh, :ow].copy()  # a fresh array: the input is never aliased


def _prereduce(image: np.ndarray, inv: np.ndarray, out_shape, border: str, fill):
    """Box-average the source by ``k`` when the warp shrinks it ``>= 2x``: antialiasing, one pass.

    ``k`` is the floor of the smallest singular value of the inverse linear
    part (input pixels per output pixel), so no direction is blurred more than
    it is shrunk (a one-level "mipmap"). The source is first extended with its
    border mode over everything the output samples, so that borders (a
    reflection, a constant) are averaged exactly like the image itself; the
    reduced image is then sampled with "edge". Returns ``(image, inv, border)``.
    """
    (a, b, c), (d, e, f) = inv
    k = int(_min_singular_value(a, b, d, e) + 1e-9)
    if k < 2:
        return image, inv, border
    h, w = image.shape[:2]
    oh, ow = out_shape
    corners = np.array([[0, 0], [ow - 1, 0], [0, oh - 1], [ow - 1, oh - 1]], dtype=np.float64)
    src = corners @ np.array([[a, d], [b, e]]) + (c, f)
    (x_lo, y_lo), (x_hi, y_hi) = np.floor(src.min(axis=0)) - k, np.ceil(src.max(axis=0)) + k
    left, right = int(max(0, -x_lo)), int(max(0, x_hi - (w - 1)))
    top, bottom = int(max(0, -y_lo)), int(max(0, y_hi - (h - 1)))
    if (h + top + bottom) * (w + left + right) > 16 * (h * w + oh * ow * k * k):
        return image, inv, border  # absurd zoom-outs: not worth the memory
    padded = pad_array(_as_3d(image), top, bottom, left, right, border, fill)
    hp, wp = padded.shape[:2]
    hk, wk = -(-hp // k), -(-wp // k)
    padded = pad_array(padded, 0, hk * k - hp, 0, wk * k - wp, "edge")
    reduced = padded.reshape(hk, k, wk, k, -1).mean(axis=(1, 3), dtype=np.float32)
    if image.dtype == np.uint8:
        reduced = np.rint(reduced).astype(np.uint8)
    else:
        reduced = reduced.astype(image.dtype)
    if image.ndim == 2:
        reduced = reduced[:, :, 0]
    # index space: shift by the padding, then u_small = (u + 0.5) / k - 0.5
    sx, sy = (left + 0.5) / k - 0.5, (top + 0.5) / k - 0.5
    return reduced, ((a / k, b / k, c / k + sx), (d / k, e / k, f / k + sy)), "edge"


# --------------------------------------------------------------------------- public API
def warp_image(image: np.ndarray, matrix: np.ndarray, out_shape, interpolation: str = "bilinear",
               border: str = "constant", fill=0, antialias: bool = True, lut=None) -> np.ndarray:
    """Resample ``image`` (H, W) or (H, W, C), uint8 or float, through a forward affine ``matrix``.

    Args:
        matrix: 3x3 forward map, input continuous coords -> output continuous coords.
        out_shape: ``(out_height, out_width)``.
        interpolation: "bilinear" or "nearest".
        border: one of ``BORDER_MODES``; ``fill`` (scalar or per channel, in the
            image's own value range) is used by "constant".
        antialias: box-average the source first when the warp shrinks it 2x or more.
        lut: optional (256,) uint8 table applied to the colour channels of a uint8
            result (fused into the bilinear kernel's last pass).

    Returns a new array ``(out_h, out_w[, C])`` of the input dtype. Pure
    flips / integer shifts / quarter turns are done by exact slicing.
    """
    inv = _index_map(matrix)
    mapping = _integer_map(inv)
    if mapping is not None or interpolation == "nearest" or image.dtype != np.uint8:
        if mapping is not None:
            out = _slice_warp(image, mapping, out_shape, border, fill)
        elif interpolation == "nearest":
            out = nearest(Grid(inv, out_shape, image.shape[:2], border), _as_3d(image), fill)
        else:
            if antialias:
                image, inv, border = _prereduce(image, inv, out_shape, border, fill)
            out = bilinear_float(Grid(inv, out_shape, image.shape[:2], border), _as_3d(image), fill)
        if image.ndim == 2 and out.ndim == 3:
            out = out[:, :, 0]
        if lut is not None:
            out = apply_lut(out, lut)
        return out
    if antialias:
        image, inv, border = _prereduce(image, inv, out_shape, border, fill)
    grid = Grid(inv, out_shape, image.shape[:2], border, frac=FIX_U8)
    out = bilinear_u8(grid, _as_3d(image), fill, lut)
    return out[:, :, 0] if image.ndim == 2 else out


def warp_mask(mask: np.ndarray, matrix: np.ndarray, out_shape, border: str = "constant",
              fill=0) -> np.ndarray:
    """Nearest-neighbour warp of a label mask (H, W) or (H, W, K) of any dtype; values preserved."""
    inv = _index_map(matrix)
    mapping = _integer_map(inv)
    if mapping is not None:
        return _slice_warp(mask, mapping, out_shape, border, fill)
    grid = Grid(inv, out_shape, mask.shape[:2], border)
    out = nearest(grid, _as_3d(mask), fill)
    return out[:, :, 0] if mask.ndim == 2 else out

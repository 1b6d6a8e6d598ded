"""One-pass affine resampling for images (bilinear/nearest) and masks (nearest).

Coordinates are *continuous*: pixel ``(row i, col j)`` covers ``[j, j+1) x [i, i+1)``
and its centre is ``(j + 0.5, i + 0.5)`` — the convention of Pillow, of
pascal_voc boxes and of the geometric matrices in ``geometric.py``. A matrix
here is a 3x3 *forward* map ``input (x, y, 1) -> output (x', y', 1)``; the
resampler inverts it once and, for every output pixel, samples the input.

Why not ``PIL.Image.transform``: its bilinear filter costs ~16 ns per pixel
(double math per band through a function pointer). The uint8 kernel below
spreads a pixel's (up to) four channels over the 16-bit lanes of one uint64
and interpolates all of them with one multiply-add per neighbour ("SIMD
within a register"): the weights are 8-bit fixed point summing to 256, so
``sum(p_k * w_k) <= 255 * 256`` never spills into the next lane, and the
result is the high byte of each lane. OpenCV's ``warpAffine`` also uses fixed
point (5-bit weights); ours are 8-bit. All scratch arrays come from a
per-thread workspace: freshly allocated 200 KB temporaries are dominated by
page faults on small VMs.

Border modes: ``constant`` (the image is extended with ``fill`` and
interpolated against it, like OpenCV's BORDER_CONSTANT), ``edge`` (replicate),
``reflect`` (mirror without repeating the edge pixel, ``np.pad``'s "reflect",
OpenCV's REFLECT_101) and ``symmetric`` (mirror repeating it).
"""
from __future__ import annotations

import math
import threading

import numpy as np

BORDER_MODES = ("constant", "edge", "reflect", "symmetric")
INTERPOLATIONS = ("nearest", "bilinear")

_FIX = 16                 # fractional bits of the fixed-point coordinates
_ONE = 1 << _FIX
_PAD = 2                  # fill/edge ring around the source for constant/edge borders
_ROUND = np.uint64(0x0080008000800080)  # +0.5 in every 16-bit lane before taking the high byte


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


# --------------------------------------------------------------------------- workspace
class _Workspace(threading.local):
    """Per-thread scratch arrays keyed by (name, shape, dtype); a few shapes are kept."""

    def __init__(self):
        self.arrays: dict = {}

    def get(self, name: str, shape, dtype) -> np.ndarray:
        key = (name, tuple(shape), np.dtype(dtype).str)
        arr = self.arrays.get(key)
        if arr is None:
            if len(self.arrays) > 64:  # images of many sizes: forget the old ones
                self.arrays.clear()
            arr = self.arrays[key] = np.empty(shape, dtype)
        return arr


_ws = _Workspace()


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


def _fill_vector(fill, channels: int, dtype) -> np.ndarray:
    """``fill`` as one value per channel: a number repeats; an RGB fill gets an opaque
    alpha on RGBA images and becomes its luma on single-channel ones."""
    vec = np.asarray(fill, dtype=np.float64).reshape(-1)
    if vec.size == 1:
        vec = np.repeat(vec, channels)
    elif vec.size == 3 and channels == 4:
        vec = np.append(vec, 255.0 if np.dtype(dtype) == np.uint8 else 1.0)
    elif vec.size in (3, 4) and channels == 1:
        vec = np.array([vec[:3] @ np.array([0.299, 0.587, 0.114])])
    elif vec.size != channels:
        raise ValueError(f"warp: fill has {vec.size} values but the array has {channels} channels")
    if np.dtype(dtype) == np.uint8:
        vec = np.clip(np.rint(vec), 0, 255)
    return vec.astype(dtype)


def _map_index(i: np.ndarray, n: int, border: str) -> np.ndarray:
    """Fold integer indices into ``[0, n)`` for reflect/symmetric borders."""
    if n == 1:
        return np.zeros_like(i)
    if border == "reflect":
        period = 2 * (n - 1)
        i = np.abs(i) % period
        return np.where(i >= n, period - i, i)
    period = 2 * n  # symmetric
    i = i % period
    return np.where(i >= n, period - 1 - i, i)


def pad_array(arr: np.ndarray, top: int, bottom: int, left: int, right: int, border: str, fill=0):
    """Pad the first two axes of ``arr`` (H, W[, C]) with a border mode; ``fill`` per channel."""
    if top == bottom == left == right == 0:
        return arr
    if border == "constant":
        h, w = arr.shape[:2]
        out = np.empty((h + top + bottom, w + left + right) + arr.shape[2:], arr.dtype)
        channels = arr.shape[2] if arr.ndim == 3 else 1
        vec = _fill_vector(fill, channels, arr.dtype)
        out[...] = vec if arr.ndim == 3 else vec[0]
        out[top:top + h, left:left + w] = arr
        return out
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, widths, mode=border)


def _as_3d(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 3 else arr[:, :, None]


def index_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a forward continuous-coordinate matrix, expressed on pixel *indices*.

    Output index ``(j, i)`` maps to input index ``u = A @ (j, i) + t``: the
    continuous inverse conjugated by the half-pixel shift. (Closed form: this
    runs once per image, where ``np.linalg`` call overhead would show.)
    """
    (a, b, c), (d, e, f) = matrix[0], matrix[1]
    det = a * e - b * d
    if det == 0 or not math.isfinite(det):
        raise ValueError(f"warp: the matrix {np.asarray(matrix)[:2].tolist()} is not invertible")
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    ic, if_ = -(ia * c + ib * f), -(id_ * c + ie * f)
    # u = inv(x + 0.5) - 0.5
    return np.array([[ia, ib, ic + 0.5 * (ia + ib) - 0.5],
                     [id_, ie, if_ + 0.5 * (id_ + ie) - 0.5],
                     [0.0, 0.0, 1.0]])


def _integer_map(inv: np.ndarray):
    """``(transpose, sy, sx, ty, tx)`` when ``inv`` only permutes/flips pixels, else None."""
    (a, b, tx), (d, e, ty) = inv[0].tolist(), inv[1].tolist()
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


# --------------------------------------------------------------------------- the sampling grid
class _Grid:
    """Fixed-point source coordinates of every output pixel (16.16, index space)."""

    def __init__(self, inv: np.ndarray, out_shape, src_shape, border: str):
        oh, ow = out_shape
        self.oh, self.ow = oh, ow
        self.h, self.w = src_shape
        self.border = border
        self.pad = _PAD if border in ("constant", "edge") else 0
        a, b, c = inv[0]
        d, e, f = inv[1]
        p = self.pad
        jj = np.arange(ow, dtype=np.float64)
        ii = np.arange(oh, dtype=np.float64)
        xr, xc = a * jj * _ONE, (b * ii + c + p) * _ONE
        yr, yc = d * jj * _ONE, (e * ii + f + p) * _ONE
        # 16.16 fixed point; int32 (half the memory traffic) while coordinates stay within
        # +-16k pixels, int64 beyond
        reach = max(abs(xr[-1]) + np.abs(xc).max(), abs(yr[-1]) + np.abs(yc).max())
        itype = np.int32 if reach < 2**30 else np.int64
        shape = (oh, ow)
        self.xx = _ws.get("xx", shape, itype)
        self.yy = _ws.get("yy", shape, itype)
        np.add(np.rint(xr).astype(itype)[None, :], np.rint(xc).astype(itype)[:, None], out=self.xx)
        np.add(np.rint(yr).astype(itype)[None, :], np.rint(yc).astype(itype)[:, None], out=self.yy)
        self.itype = itype

    # -- index helpers ---------------------------------------------------------
    def _floor(self, field, name):
        out = _ws.get(name, field.shape, self.itype)
        np.right_shift(field, _FIX, out=out)
        return out

    def corner_indices(self):
        """``(base, [offsets or index arrays])`` addressing the four bilinear neighbours."""
        x0 = self._floor(self.xx, "x0")
        y0 = self._floor(self.yy, "y0")
        shape = (self.oh, self.ow)
        if self.pad:
            wp, hp = self.w + 2 * self.pad, self.h + 2 * self.pad
            np.clip(x0, 0, wp - 2, out=x0)
            np.clip(y0, 0, hp - 2, out=y0)
            idx = _ws.get("idx", shape, np.intp)
            np.multiply(y0, wp, out=idx)
            idx += x0
            return wp, [(0, idx), (1, idx), (wp, idx), (wp + 1, idx)]
        xs = (_map_index(x0, self.w, self.border), _map_index(x0 + 1, self.w, self.border))
        ys = (_map_index(y0, self.h, self.border), _map_index(y0 + 1, self.h, self.border))
        return self.w, [(0, ys[r] * self.w + xs[c]) for r in (0, 1) for c in (0, 1)]

    def nearest_index(self) -> tuple[int, np.ndarray]:
        """Flat index of the source pixel containing each output pixel's centre."""
        shape = (self.oh, self.ow)
        xn = _ws.get("xn", shape, self.itype)
        yn = _ws.get("yn", shape, self.itype)
        np.add(self.xx, _ONE // 2, out=xn)
        np.right_shift(xn, _FIX, out=xn)
        np.add(self.yy, _ONE // 2, out=yn)
        np.right_shift(yn, _FIX, out=yn)
        if self.pad:
            wp, hp = self.w + 2 * self.pad, self.h + 2 * self.pad
            np.clip(xn, 0, wp - 1, out=xn)
            np.clip(yn, 0, hp - 1, out=yn)
        else:
            wp = self.w
            xn = _map_index(xn, self.w, self.border)
            yn = _map_index(yn, self.h, self.border)
        idx = _ws.get("nidx", shape, np.intp)
        np.multiply(yn, wp, out=idx)
        idx += xn
        return wp, idx

    def weights_u8(self):
        """Four 8-bit bilinear weights per output pixel summing to exactly 256, as uint64."""
        shape = (self.oh, self.ow)
        fx = _ws.get("fx", shape, self.itype)
        fy = _ws.get("fy", shape, self.itype)
        w3 = _ws.get("w3", shape, self.itype)
        w0 = _ws.get("w0", shape, self.itype)
        np.right_shift(self.xx, _FIX - 8, out=fx)
        fx &= 255
        np.right_shift(self.yy, _FIX - 8, out=fy)
        fy &= 255
        np.multiply(fx, fy, out=w3)
        w3 += 128
        w3 >>= 8  # w11 = fx * fy / 256, rounded
        np.subtract(256, fx, out=w0)
        w0 -= fy
        w0 += w3  # w00 = (256 - fx)(256 - fy) / 256 = 256 - fx - fy + w11
        fx -= w3  # w01
        fy -= w3  # w10
        out = []
        for k, w in enumerate((w0, fx, fy, w3)):
            wide = _ws.get(f"w64_{k}", shape, np.uint64)
            wide[...] = w
            out.append(wide)
        return out

    def weights_float(self, dtype):
        scale = 1.0 / _ONE
        fx = ((self.xx & (_ONE - 1)) * scale).astype(dtype)
        fy = ((self.yy & (_ONE - 1)) * scale).astype(dtype)
        gx, gy = 1 - fx, 1 - fy
        return [gx * gy, fx * gy, gx * fy, fx * fy]

    # -- padded sources ---------------------------------------------------------
    def padded(self, src3: np.ndarray, fill, name: str) -> np.ndarray:
        """``src3`` (H, W, C) with the constant/edge ring, as a reusable buffer."""
        p = self.pad
        if not p:
            return src3
        h, w, c = src3.shape
        buf = _ws.get(name, (h + 2 * p, w + 2 * p, c), src3.dtype)
        buf[p:p + h, p:p + w] = src3
        _fill_ring(buf, p, self.border, fill)
        return buf


def _fill_ring(buf: np.ndarray, p: int, border: str, fill) -> None:
    h, w = buf.shape[0] - 2 * p, buf.shape[1] - 2 * p
    if border == "constant":
        vec = fill
        buf[:p] = vec
        buf[p + h:] = vec
        buf[:, :p] = vec
        buf[:, p + w:] = vec
    else:  # edge
        buf[:p, p:p + w] = buf[p:p + 1, p:p + w]
        buf[p + h:, p:p + w] = buf[p + h - 1:p + h, p:p + w]
        buf[:, :p] = buf[:, p:p + 1]
        buf[:, p + w:] = buf[:, p + w - 1:p + w]


# --------------------------------------------------------------------------- kernels
def _bilinear_u8(grid: _Grid, img3: np.ndarray, fill, lut=None) -> np.ndarray:
    h, w, c = img3.shape
    oh, ow = grid.oh, grid.ow
    p = grid.pad
    weights = grid.weights_u8()
    _, corners = grid.corner_indices()
    out = np.empty((oh, ow, c), np.uint8)
    acc = _ws.get("acc", (oh, ow), np.uint64)
    pix = _ws.get("pix", (oh, ow), np.uint64)
    high = acc.view(np.uint8).reshape(oh, ow, 8)[:, :, 1::2]  # high byte of each 16-bit lane
    source = _ws.get("lanes", (h + 2 * p, w + 2 * p), np.uint64)
    lanes = source.view(np.uint16).reshape(h + 2 * p, w + 2 * p, 4)
    flat = source.reshape(-1)
    fill_vec = _fill_vector(fill, c, np.uint8)
    for c0 in range(0, c, 4):  # four channels per uint64; more channels in groups of four
        group = min(4, c - c0)
        for k in range(group):
            lanes[p:p + h, p:p + w, k] = img3[:, :, c0 + k]
        if p:
            ring = np.zeros(4, np.uint16)
            ring[:group] = fill_vec[c0:c0 + group]
            _fill_ring(lanes, p, grid.border, ring)
        acc.fill(_ROUND)
        for (offset, idx), wk in zip(corners, weights):
            # indices are in range by construction; "wrap" skips take's bounds buffering
            np.take(flat[offset:] if offset else flat, idx, out=pix, mode="wrap")
            pix *= wk
            acc += pix
        for k in range(group):
            out[:, :, c0 + k] = high[:, :, k]
    if lut is not None:
        colour = out[:, :, :3] if c == 4 else out  # alpha keeps its values
        np.take(lut, colour, out=colour)
    return out


def _bilinear_float(grid: _Grid, img3: np.ndarray, fill) -> np.ndarray:
    c = img3.shape[2]
    src = grid.padded(img3, _fill_vector(fill, c, img3.dtype), "fpad")
    flat = src.reshape(-1, c)
    weights = grid.weights_float(img3.dtype)
    _, corners = grid.corner_indices()
    out = np.zeros((grid.oh, grid.ow, c), img3.dtype)
    for (offset, idx), wk in zip(corners, weights):
        out += np.take(flat[offset:] if offset else flat, idx, axis=0) * wk[:, :, None]
    return out


def _nearest(grid: _Grid, src3: np.ndarray, fill) -> np.ndarray:
    c = src3.shape[2]
    src = grid.padded(src3, _fill_vector(fill, c, src3.dtype), "npad")
    _, idx = grid.nearest_index()
    flat = src.reshape(-1, c)
    if c == 1:
        return np.take(flat[:, 0], idx)[:, :, None]
    return np.take(flat, idx, axis=0)


def _prereduce(image: np.ndarray, inv: np.ndarray, out_shape, border: str, fill):
    """Box-average the source by ``k`` when the warp shrinks it ``>= 2x``: antialiasing, one pass.

    ``k`` is the floor of the smallest singular value of the inverse linear
    part (input pixels per output pixel), so no direction is blurred more than
    it is shrunk (a one-level "mipmap"). The source is first extended with its
    border mode over everything the output samples, so that borders (a
    reflection, a constant) are averaged exactly like the image itself; the
    reduced image is then sampled with "edge". Returns ``(image, inv, border)``.
    """
    k = int(_min_singular_value(inv[0, 0], inv[0, 1], inv[1, 0], inv[1, 1]) + 1e-9)
    if k < 2:
        return image, inv, border
    h, w = image.shape[:2]
    oh, ow = out_shape
    corners = np.array([[0, 0], [ow - 1, 0], [0, oh - 1], [ow - 1, oh - 1]], dtype=np.float64)
    src = corners @ inv[:2, :2].T + inv[:2, 2]
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
    shrink = np.array([[1 / k, 0, (left + 0.5) / k - 0.5], [0, 1 / k, (top + 0.5) / k - 0.5], [0, 0, 1.0]])
    return reduced, shrink @ inv, "edge"


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
    inv = index_affine(np.asarray(matrix, dtype=np.float64))
    mapping = _integer_map(inv)
    if mapping is not None or interpolation == "nearest" or image.dtype != np.uint8:
        if mapping is not None:
            out = _slice_warp(image, mapping, out_shape, border, fill)
        elif interpolation == "nearest":
            out = _nearest(_Grid(inv, out_shape, image.shape[:2], border), _as_3d(image), fill)
        else:
            if antialias:
                image, inv, border = _prereduce(image, inv, out_shape, border, fill)
            out = _bilinear_float(_Grid(inv, out_shape, image.shape[:2], border), _as_3d(image), fill)
        if image.ndim == 2 and out.ndim == 3:
            out = out[:, :, 0]
        if lut is not None:
            from core.augment.pixel import apply_lut

            out = apply_lut(out, lut)
        return out
    if antialias:
        image, inv, border = _prereduce(image, inv, out_shape, border, fill)
    grid = _Grid(inv, out_shape, image.shape[:2], border)
    out = _bilinear_u8(grid, _as_3d(image), fill, lut)
    return out[:, :, 0] if image.ndim == 2 else out


def warp_mask(mask: np.ndarray, matrix: np.ndarray, out_shape, border: str = "constant",
              fill=0) -> np.ndarray:
    """Nearest-neighbour warp of a label mask (H, W) or (H, W, K) of any dtype; values preserved."""
    inv = index_affine(np.asarray(matrix, dtype=np.float64))
    mapping = _integer_map(inv)
    if mapping is not None:
        return _slice_warp(mask, mapping, out_shape, border, fill)
    grid = _Grid(inv, out_shape, mask.shape[:2], border)
    out = _nearest(grid, _as_3d(mask), fill)
    return out[:, :, 0] if mask.ndim == 2 else out

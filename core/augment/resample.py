"""The sampling grid and the resampling kernels behind ``warp.py`` (uint8 bilinear, float
bilinear, nearest). Index space: pixel ``(i, j)`` has index coordinates ``(j, i)``;
``warp.index_affine`` turns a forward matrix into the inverse map used here.

The uint8 bilinear kernel spreads a pixel's (up to) four channels over the
16-bit lanes of one uint64 and interpolates all of them with one multiply-add
per neighbour ("SIMD within a register"): the weights are 8-bit fixed point
summing to 256, so ``sum(p_k * w_k) <= 255 * 256`` never spills into the next
lane, and the result is the high byte of each lane. (OpenCV's ``warpAffine``
also uses fixed point, with 5-bit weights.) Lanes are little-endian, as on
every platform NumPy ships for.

Cost model (224x224 output, one core): NumPy runs each step as a pass over
arrays of the output's size, so the kernel is ~30 such passes plus four
gathers; what matters is how many passes there are and how much memory they
stream. Hence: scratch arrays come from a per-thread workspace (fresh 200 KB
temporaries are dominated by page faults on small VMs), coordinates are built
from two short vectors, the source is cut down to the part that is sampled,
indices are ``intp`` (``np.take`` converts anything else on every call), each
weight is computed just before it is used, and the lookup table of a fused tone
curve is applied two bytes at a time (``lut.py``).
"""
from __future__ import annotations

import functools
import math
import threading

import numpy as np

from core.augment.lut import map_bytes

FIX = 16     # fractional bits of the fixed-point coordinates (float, nearest)
FIX_U8 = 8   # ... of the uint8 bilinear kernel: its weights have 8 bits anyway
_PAD = 2     # fill/edge ring around the source for constant/edge borders
_ROUND = np.uint64(0x0080008000800080)  # +0.5 in every 16-bit lane before taking the high byte


# --------------------------------------------------------------------------- workspace
class _Workspace(threading.local):
    """Per-thread scratch arrays keyed by (name, shape, dtype); a few shapes are kept."""

    def __init__(self):
        self.arrays: dict = {}

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        key = (name, shape, dtype)  # callers pass tuples and dtype classes: hashing them is cheap
        arr = self.arrays.get(key)
        if arr is None:
            if len(self.arrays) > 64:  # images of many sizes: forget the old ones
                self.arrays.clear()
            arr = self.arrays[key] = np.empty(shape, dtype)
        return arr

    def prefix(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """Like ``get`` for shapes that change from call to call (a crop of the source):
        a view of the front of one buffer per name, grown when too small."""
        size = math.prod(shape)
        key = (name, dtype)
        buf = self.arrays.get(key)
        if buf is None or buf.size < size:
            if len(self.arrays) > 64:
                self.arrays.clear()
            buf = self.arrays[key] = np.empty(max(size, 1), dtype)
        return buf[:size].reshape(shape)


_ws = _Workspace()


# --------------------------------------------------------------------------- borders
def fill_vector(fill, channels: int, dtype) -> np.ndarray:
    """``fill`` as one value per channel: a number repeats; an RGB fill gets an opaque
    alpha on RGBA images and becomes its luma on single-channel ones. Read-only."""
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):  # per image: cache it
        return _fill_vector_of_number(float(fill), channels, np.dtype(dtype).str)
    return _fill_vector_of(fill, channels, dtype)


@functools.lru_cache(maxsize=64)
def _fill_vector_of_number(fill: float, channels: int, dtype: str) -> np.ndarray:
    vec = _fill_vector_of(fill, channels, np.dtype(dtype))
    vec.flags.writeable = False
    return vec


def _fill_vector_of(fill, channels: int, dtype) -> np.ndarray:
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


# --------------------------------------------------------------------------- the sampling grid
@functools.lru_cache(maxsize=16)
def _arange(n: int) -> np.ndarray:
    """``0 .. n-1`` as float64, shared (read-only)."""
    out = np.arange(n, dtype=np.float64)
    out.flags.writeable = False
    return out


class Grid:
    """Fixed-point source coordinates of every output pixel (index space, ``frac`` fractional bits).

    The map is affine, so the coordinate of output pixel ``(i, j)`` is
    ``col[j] + row[i]`` for two short vectors: one broadcast add builds the
    field, and its extremes (sums of the vectors' end values: rounding keeps
    them monotonic) are known before any full-size pass. From them:

    - the source is cut down to the pixels the bilinear footprints cover (a
      random-resized crop samples a fraction of its input): ``crop`` returns
      that view and the coordinates are relative to it. Only where the cut is
      the image edge can a sample cross it, so a constant/edge ring around the
      cut means the same as one around the image;
    - when every footprint lies inside the image all border modes agree, and
      the cheap padded path ("edge") serves reflect/symmetric too;
    - index clipping and the border ring are skipped when no sample reaches them.
    """

    def __init__(self, inv, out_shape, src_shape, border: str, frac: int = FIX):
        """``inv``: the index-space inverse map, rows ``((a, b, c), (d, e, f))`` (or a 3x3 array)."""
        oh, ow = out_shape
        h, w = src_shape
        self.oh, self.ow = oh, ow
        self.frac = frac
        scale = float(1 << frac)
        rows = inv.tolist() if isinstance(inv, np.ndarray) else inv
        (a, b, c), (d, e, f) = ([v * scale for v in row[:3]] for row in rows[:2])
        # The end values of the rounded coordinate vectors built below, with the same
        # float operations (IEEE: identical results); rint keeps an affine sequence monotonic.
        x_col, y_col = (0, round(a * (ow - 1))), (0, round(d * (ow - 1)))
        x_row, y_row = (round(c), round(b * (oh - 1) + c)), (round(f), round(e * (oh - 1) + f))
        x_lo, x_hi = min(x_col) + min(x_row), max(x_col) + max(x_row)
        y_lo, y_hi = min(y_col) + min(y_row), max(y_col) + max(y_row)
        # source columns/rows the footprints cover: floor(lo) .. floor(hi) + 1
        cx0, cx1 = (x_lo >> frac), (x_hi >> frac) + 1
        cy0, cy1 = (y_lo >> frac), (y_hi >> frac) + 1
        if border not in ("constant", "edge") and 0 <= cx0 and cx1 < w and 0 <= cy0 and cy1 < h:
            border = "edge"
        if border in ("constant", "edge"):
            left = min(max(cx0, 0), w - 1)
            top = min(max(cy0, 0), h - 1)
            right, bottom = max(min(cx1, w - 1), left), max(min(cy1, h - 1), top)
        else:
            left, top, right, bottom = 0, 0, w - 1, h - 1
        self.border = border
        self.pad = p = _PAD if border in ("constant", "edge") else 0
        self.origin = (top, left)
        self.h, self.w = bottom - top + 1, right - left + 1
        # relative to the padded cut: integer shifts, exact in fixed point
        shift_x, shift_y = (p - left) << frac, (p - top) << frac
        x_lo, x_hi, y_lo, y_hi = x_lo + shift_x, x_hi + shift_x, y_lo + shift_y, y_hi + shift_y
        # the range of the top-left neighbour's index
        self.x0_span = (x_lo >> frac, x_hi >> frac)
        self.y0_span = (y_lo >> frac, y_hi >> frac)
        # int32 (half the memory traffic) while coordinates stay within +-2**30 / 2**frac pixels
        itype = np.int32 if max(-x_lo, x_hi, -y_lo, y_hi) < 2**30 else np.int64
        self.itype = itype
        # rows 0, 1: x and y along an output row; rows 2, 3: x and y down the first column
        vec = np.multiply.outer(np.array((a, d, b, e)), _arange(max(oh, ow)))
        vec[2] += c  # scalar row updates: nested tuples would be converted to arrays first
        vec[3] += f
        np.rint(vec, out=vec)
        vec = vec.astype(itype)
        vec[2] += shift_x
        vec[3] += shift_y
        self.xx = _ws.get("xx", (oh, ow), itype)
        self.yy = _ws.get("yy", (oh, ow), itype)
        np.add(vec[0, None, :ow], vec[2, :oh, None], out=self.xx)
        np.add(vec[1, None, :ow], vec[3, :oh, None], out=self.yy)

    def crop(self, src: np.ndarray) -> np.ndarray:
        """The part of ``src`` (H, W[, C]) the coordinates refer to (a view)."""
        top, left = self.origin
        return src[top:top + self.h, left:left + self.w]

    @property
    def padded_size(self) -> tuple[int, int]:
        return self.h + 2 * self.pad, self.w + 2 * self.pad

    def touches_ring(self) -> bool:
        """Whether a bilinear footprint reaches the constant/edge ring around the source."""
        p = self.pad
        return (self.x0_span[0] < p or self.x0_span[1] > p + self.w - 2
                or self.y0_span[0] < p or self.y0_span[1] > p + self.h - 2)

    # -- index helpers ---------------------------------------------------------
    def _floor(self, field, name):
        out = _ws.get(name, field.shape, self.itype)
        np.right_shift(field, self.frac, out=out)
        return out

    def _flat_index(self, rows: np.ndarray, cols: np.ndarray, width: int, size: int) -> np.ndarray:
        """``rows * width + cols`` (``< size``) as ``intp``, overwriting ``rows``.

        ``np.take`` converts any other index type to intp (a full-size copy) on every
        call, and the kernel calls it four times; mixed int32/intp arithmetic costs
        more than one conversion at the end.
        """
        idx = _ws.get("idx", rows.shape, np.intp)
        if rows.dtype == np.intp or size >= 2**31:
            np.multiply(rows, width, out=idx)
            idx += cols
        else:
            rows *= width
            rows += cols
            np.copyto(idx, rows)
        return idx

    def _padded_index(self, x0, y0):
        """``(padded row stride, flat index of the top-left neighbour)``; clips (in place) only
        when a footprint can leave the padded source. Overwrites ``y0``."""
        hp, wp = self.padded_size
        _clamp(x0, self.x0_span, wp - 2)
        _clamp(y0, self.y0_span, hp - 2)
        return wp, self._flat_index(y0, x0, wp, hp * wp)

    def corner_indices(self):
        """``(row stride, [(offset, flat index)] * 4)`` addressing the four bilinear neighbours."""
        x0 = self._floor(self.xx, "x0")
        y0 = self._floor(self.yy, "y0")
        if self.pad:
            wp, idx = self._padded_index(x0, y0)
            return wp, [(0, idx), (1, idx), (wp, idx), (wp + 1, idx)]
        xs = (_map_index(x0, self.w, self.border), _map_index(x0 + 1, self.w, self.border))
        ys = (_map_index(y0, self.h, self.border), _map_index(y0 + 1, self.h, self.border))
        return self.w, [(0, ys[r] * self.w + xs[c]) for r in (0, 1) for c in (0, 1)]

    def nearest_index(self) -> tuple[int, np.ndarray]:
        """Flat index of the source pixel containing each output pixel's centre."""
        shape = (self.oh, self.ow)
        half = 1 << (self.frac - 1)
        xn = _ws.get("xn", shape, self.itype)
        yn = _ws.get("yn", shape, self.itype)
        np.add(self.xx, half, out=xn)
        np.right_shift(xn, self.frac, out=xn)
        np.add(self.yy, half, out=yn)
        np.right_shift(yn, self.frac, out=yn)
        if self.pad:
            hp, wp = self.padded_size
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

    def taps_u8(self):
        """Yield ``(offset, flat index, weight)`` for the four bilinear neighbours (``frac == 8``).

        The 8-bit weights of a pixel sum to exactly 256. Each is computed just
        before it is yielded, in place in the coordinate fields (each used once),
        so it is still in cache when the kernel multiplies by it; all four stay
        valid to the end. They are unsigned views (uint32 or uint64): multiplying
        a uint64 by them costs what widening them first would.
        """
        shape = (self.oh, self.ow)
        xx, yy = self.xx, self.yy
        fx = _ws.get("fx", shape, self.itype)
        fy = _ws.get("fy", shape, self.itype)
        np.bitwise_and(xx, 255, out=fx)
        np.bitwise_and(yy, 255, out=fy)
        if self.pad:
            xx >>= 8
            yy >>= 8
            wp, idx = self._padded_index(xx, yy)
            (i00, i01, i10, i11) = ((0, idx), (1, idx), (wp, idx), (wp + 1, idx))
        else:
            _, (i00, i01, i10, i11) = self.corner_indices()
        unsigned = np.uint32 if self.itype == np.int32 else np.uint64
        w11, w00 = xx, yy  # free now: the neighbour indices are computed
        np.multiply(fx, fy, out=w11)
        w11 += 128
        w11 >>= 8  # w11 = fx * fy / 256, rounded
        yield i11 + (w11.view(unsigned),)
        fy -= w11  # w10 = fy - w11
        yield i10 + (fy.view(unsigned),)
        np.subtract(256, fx, out=w00)
        w00 -= fy  # w00 = 256 - fx - fy + w11 = (256 - fx)(256 - fy) / 256
        yield i00 + (w00.view(unsigned),)
        fx -= w11  # w01 = fx - w11
        yield i01 + (fx.view(unsigned),)

    def weights_float(self, dtype):
        scale = 1.0 / (1 << self.frac)
        mask = (1 << self.frac) - 1
        fx = ((self.xx & mask) * scale).astype(dtype)
        fy = ((self.yy & mask) * scale).astype(dtype)
        gx, gy = 1 - fx, 1 - fy
        return [gx * gy, fx * gy, gx * fy, fx * fy]

    # -- padded sources ---------------------------------------------------------
    def padded(self, src3: np.ndarray, fill, name: str) -> np.ndarray:
        """``src3`` (H, W, C) with the constant/edge ring, as a reusable buffer."""
        p = self.pad
        if not p:
            return src3
        h, w, c = src3.shape
        buf = _ws.prefix(name, (h + 2 * p, w + 2 * p, c), src3.dtype)
        buf[p:p + h, p:p + w] = src3
        _fill_ring(buf, p, self.border, fill)
        return buf


def _clamp(i: np.ndarray, span: tuple, hi: int) -> None:
    """Clip ``i`` (whose values lie in ``span``) to ``[0, hi]`` in place when it crosses either end.

    The method, not ``np.clip`` (whose dispatch wrapper costs ~1 us a call), and not
    ``np.maximum``/``np.minimum`` (their loops against a scalar are not vectorised: ~4x slower).
    """
    if span[0] < 0 or span[1] > hi:
        i.clip(0, hi, out=i)


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
def _pack_lanes(words: np.ndarray, img3: np.ndarray, c0: int, group: int, p: int) -> None:
    """Write channels ``c0 : c0 + group`` of ``img3`` into the 16-bit lanes of ``words`` (at offset ``p``).

    The unused lanes of an RGB word keep whatever they hold: a lane's products
    and carries only ever move up, out of the word, never into the lanes below.
    """
    h, w, c = img3.shape
    inner = words[p:p + h, p:p + w]
    lanes = inner.view(np.uint16).reshape(h, w, 4)
    if group == 4:  # RGBA: a plain widening copy (contiguous rows when the image is)
        np.copyto(lanes, img3[:, :, c0:c0 + 4])
    elif group == 3 and c == 3:
        # Widen to uint16 (contiguous, fast), then read one uint64 every 6 bytes: each
        # word holds R, G, B and the next pixel's R in the spare lane. Three strided
        # per-channel copies into the lanes cost twice as much.
        wide = _ws.prefix("rgb16", (h * w * 3 + 4,), np.uint16)  # +4: the last word reads past B
        np.copyto(wide[:h * w * 3].reshape(h, w, 3), img3)
        np.copyto(inner, np.ndarray((h, w), np.uint64, wide, 0, (6 * w, 6)))
    else:
        for k in range(group):
            lanes[:, :, k] = img3[:, :, c0 + k]


def bilinear_u8(grid: Grid, img3: np.ndarray, fill, lut=None) -> np.ndarray:
    """SWAR bilinear kernel (see the module docstring); ``grid`` must have ``frac == 8``."""
    img3 = grid.crop(img3)
    c = img3.shape[2]
    oh, ow = grid.oh, grid.ow
    p = grid.pad
    taps = grid.taps_u8()
    if c > 4:
        taps = list(taps)  # reused by every group of four channels
    out = np.empty((oh, ow, c), np.uint8)
    acc = _ws.get("acc", (oh, ow), np.uint64)
    pix = _ws.get("pix", (oh, ow), np.uint64)
    high = acc.view(np.uint8).reshape(oh, ow, 8)  # lane k's high byte: high[:, :, 2k + 1]
    words = _ws.prefix("lanes", grid.padded_size, np.uint64)
    flat = words.reshape(-1)
    ring = p and grid.touches_ring()
    for c0 in range(0, c, 4):  # four channels per uint64; more channels in groups of four
        group = min(4, c - c0)
        _pack_lanes(words, img3, c0, group, p)
        if ring:
            lane_fill = np.zeros(4, np.uint16)
            lane_fill[:group] = fill_vector(fill, c, np.uint8)[c0:c0 + group]
            _fill_ring(words.view(np.uint16).reshape(words.shape + (4,)), p, grid.border, lane_fill)
        first = True
        for offset, idx, weight in taps:
            part = acc if first else pix
            # indices are in range by construction; "wrap" skips take's bounds buffering
            (flat[offset:] if offset else flat).take(idx, out=part, mode="wrap")
            part *= weight
            if first:
                first = False
            else:
                acc += pix
        acc += _ROUND
        for k in range(group):
            out[:, :, c0 + k] = high[:, :, 2 * k + 1]
    if lut is not None:
        if c == 4:  # alpha keeps its values
            colour = out[:, :, :3]
            np.take(lut, colour, out=colour)
        else:
            map_bytes(out, lut)
    return out


def bilinear_float(grid: Grid, img3: np.ndarray, fill) -> np.ndarray:
    c = img3.shape[2]
    src = grid.padded(grid.crop(img3), fill_vector(fill, c, img3.dtype), "fpad")
    flat = src.reshape(-1, c)
    weights = grid.weights_float(img3.dtype)
    _, corners = grid.corner_indices()
    out = np.zeros((grid.oh, grid.ow, c), img3.dtype)
    for (offset, idx), wk in zip(corners, weights):
        out += np.take(flat[offset:] if offset else flat, idx, axis=0) * wk[:, :, None]
    return out


def nearest(grid: Grid, src3: np.ndarray, fill) -> np.ndarray:
    c = src3.shape[2]
    src = grid.padded(grid.crop(src3), fill_vector(fill, c, src3.dtype), "npad")
    _, idx = grid.nearest_index()
    flat = src.reshape(-1, c)
    if c == 1:
        return np.take(flat[:, 0], idx)[:, :, None]
    return np.take(flat, idx, axis=0)

"""Pipelines: ``Compose``, ``OneOf``, ``SomeOf``, ``RandomApply`` and the fused executor.

A call runs in two phases:

1. **Plan** (random): walk the tree, decide which transforms apply, draw
   their parameters (tracking the image shape as it changes). The result is
   a flat list of ``(transform, params)`` steps plus a nested JSON-able
   *record* of every decision — what ``replay`` consumes.
2. **Execute** (deterministic): run the steps. Consecutive geometric steps
   with compatible sampling settings are multiplied into one matrix and the
   image and masks are resampled once; consecutive uint8 tone curves are
   multiplied into one lookup table. Boxes and keypoints are moved (and
   clipped/filtered) at every geometric step, exactly as if the transforms
   ran one after another.

Call styles (``pipe`` is a ``Compose``)::

    out = pipe(image)                      # ndarray in, ndarray out
    out = pipe(image, rng)                 # the DataLoader's transform(x, rng) protocol
    res = pipe(image=img, mask=m, boxes=b, labels=l, keypoints=k, rng=rng)
    # res: dict with the same keys plus "params" (the record)
    again = pipe.replay(res["params"], image=other)

Targets: ``image`` (required), ``mask`` (one array) or ``masks`` (a list),
``boxes`` ``(N, 4)`` in ``box_format`` with optional ``labels`` (length N,
filtered with the boxes), ``keypoints`` ``(K, 2+)`` with optional
``keypoint_labels``.
"""
from __future__ import annotations

import numpy as np

from core.augment import targets as tg
from core.augment import warp
from core.augment.base import Transform, check_image, check_positive_int, check_probability
from core.augment.geometric import image_fill
from core.augment.lut import apply_lut
from core.augment.pixel import ToneCurve
from core.augment.registry import register
from core.backend import as_generator

TARGETS = ("image", "mask", "masks", "boxes", "labels", "keypoints", "keypoint_labels")


class _Plan:
    """Mutable state of the planning walk: the generator, the current shape, the steps
    (``(transform, params, (matrix, out_shape) or None)``)."""

    __slots__ = ("rng", "shape", "steps")

    def __init__(self, rng, shape):
        self.rng, self.shape, self.steps = rng, tuple(shape), []


def _check_transforms(transforms, where: str) -> list:
    if isinstance(transforms, Transform) or not isinstance(transforms, (list, tuple)):
        raise TypeError(f"{where}: transforms must be a list of transforms, got {type(transforms).__name__}")
    for i, t in enumerate(transforms):
        if not isinstance(t, Transform) or t.kind == "batch":
            raise TypeError(f"{where}: transforms[{i}] must be a per-image Transform, got {t!r}")
    return list(transforms)


def _add_step(t: Transform, params: dict, plan: _Plan) -> None:
    """Queue ``t`` with ``params``; a geometric step keeps the matrix it is planned with."""
    if t.kind == "geometric":
        m, out_shape = t.matrix(params, plan.shape)
        out_shape = tuple(out_shape)
        plan.steps.append((t, params, (m, out_shape)))
    else:
        out_shape = tuple(t.output_shape(plan.shape, params))
        plan.steps.append((t, params, None))
    plan.shape = out_shape


def _plan_node(t: Transform, plan: _Plan) -> dict:
    if isinstance(t, Container):
        return t.plan(plan)
    applied = t.p >= 1.0 or (t.p > 0.0 and plan.rng.random() < t.p)
    if not applied:
        return {"name": type(t).__name__, "applied": False}
    params = t.sample_params(plan.rng, plan.shape)
    _add_step(t, params, plan)
    return {"name": type(t).__name__, "applied": True, "params": params}


def _replay_node(t: Transform, record, plan: _Plan) -> None:
    name = type(t).__name__
    if not isinstance(record, dict) or record.get("name") != name:
        got = record.get("name") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"replay: the record has {got!r} where the pipeline has {name}")
    if isinstance(t, Container):
        t.replan(record, plan)
    elif record.get("applied"):
        _add_step(t, record.get("params", {}), plan)


class Container(Transform):
    """A transform made of transforms; subclasses define how children are chosen."""

    kind = "container"

    def __init__(self, transforms, p: float = 1.0):
        super().__init__(p)
        self.transforms = _check_transforms(transforms, type(self).__name__)

    def _choose(self, rng) -> tuple[list[int], dict]:
        """Indices of the children to run, and extra record fields."""
        return list(range(len(self.transforms))), {}

    def plan(self, plan: _Plan) -> dict:
        name = type(self).__name__
        if not (self.p >= 1.0 or (self.p > 0.0 and plan.rng.random() < self.p)):
            return {"name": name, "applied": False}
        chosen, extra = self._choose(plan.rng)
        children = [_plan_node(self.transforms[i], plan) for i in chosen]
        return {"name": name, "applied": True, **extra, "children": children}

    def replan(self, record: dict, plan: _Plan) -> None:
        if not record.get("applied"):
            return
        chosen = self._chosen_from(record)
        children = record.get("children", [])
        if len(children) != len(chosen):
            raise ValueError(f"replay: {type(self).__name__} record has {len(children)} children, expected {len(chosen)}")
        for i, child in zip(chosen, children):
            if not 0 <= i < len(self.transforms):
                raise ValueError(f"replay: {type(self).__name__} record chooses child {i} of {len(self.transforms)}")
            _replay_node(self.transforms[i], child, plan)

    def _chosen_from(self, record: dict) -> list[int]:
        return list(range(len(self.transforms)))

    def __repr__(self) -> str:
        inner = ",\n".join("    " + repr(t).replace("\n", "\n    ") for t in self.transforms)
        rest = ", ".join(f"{k}={v!r}" for k, v in self.get_args().items() if k != "transforms")
        return f"{type(self).__name__}([\n{inner}\n], {rest})"


@register
class Compose(Container):
    """Run transforms in order; the top-level pipeline object.

    Args:
        transforms: list of transforms (containers nest).
        p: probability of running the whole list.
        seed: seed (or Generator) used when a call passes no ``rng``. With
            worker processes pass ``rng`` per sample (e.g. ``derive_rng(seed, index)``)
            so workers do not repeat each other.
        box_format: "pascal_voc", "coco" or "yolo" for ``boxes`` in and out.
        min_area: drop boxes whose clipped area is below this many pixels.
        min_visibility: drop boxes keeping less than this fraction of their area.
        strict_boxes: raise when an input box lies outside the image instead of clipping it.
        remove_invisible_keypoints: drop keypoints that leave the image (with their labels).
        fuse: fuse consecutive warps / lookup tables (False runs each transform alone; for tests).
    """

    def __init__(self, transforms, p: float = 1.0, seed=None, box_format: str = "pascal_voc",
                 min_area: float = 0.0, min_visibility: float = 0.0, strict_boxes: bool = False,
                 remove_invisible_keypoints: bool = True, fuse: bool = True):
        super().__init__(transforms, p)
        self.seed = seed
        self._rng = as_generator(seed)
        self.box_format = tg.check_box_format(box_format, "Compose")
        if not (isinstance(min_area, (int, float)) and min_area >= 0):
            raise ValueError(f"Compose: min_area must be a number >= 0, got {min_area!r}")
        if not (isinstance(min_visibility, (int, float)) and 0 <= min_visibility <= 1):
            raise ValueError(f"Compose: min_visibility must be in [0, 1], got {min_visibility!r}")
        self.min_area, self.min_visibility = float(min_area), float(min_visibility)
        self.strict_boxes = bool(strict_boxes)
        self.remove_invisible_keypoints = bool(remove_invisible_keypoints)
        self.fuse = bool(fuse)

    def get_args(self) -> dict:
        args = super().get_args()
        if not isinstance(self.seed, (int, type(None))):
            args["seed"] = None  # a Generator is state, not configuration
        return args

    # -- calling ---------------------------------------------------------------
    def __call__(self, *args, rng=None, **targets):
        image, rng, as_dict = _parse_call(args, rng, targets, "Compose")
        gen = self._rng if rng is None else as_generator(rng)
        plan = _Plan(gen, image.shape[:2])
        record = self.plan(plan)
        return self._execute(plan.steps, image, targets, record, as_dict)

    def replay(self, record: dict, *args, **targets):
        """Apply the decisions in ``record`` (a previous result's ``"params"``) to new inputs."""
        image, _, as_dict = _parse_call(args, None, targets, "Compose.replay")
        plan = _Plan(None, image.shape[:2])
        _replay_node(self, record, plan)
        return self._execute(plan.steps, image, targets, record, as_dict)

    # -- execution ---------------------------------------------------------------
    def _execute(self, steps, image, targets, record, as_dict):
        where = "Compose"  # the image was checked by _parse_call
        shape = image.shape[:2]
        masks, single_mask = _collect_masks(targets, shape, where)
        boxes = labels = kps = kp_labels = None
        if "boxes" in targets:
            boxes = tg.boxes_to_voc(targets["boxes"], self.box_format, shape, where)
            labels = _check_labels(targets.get("labels"), len(boxes), "labels", where)
            if self.strict_boxes:
                tg.check_inside(boxes, shape, where)
            else:  # lenient: clip to the image, drop boxes entirely outside it
                boxes, entry_keep = tg.clip_and_filter(boxes, shape, 0.0, 0.0)
        elif "labels" in targets:
            raise TypeError(f"{where}: labels were given without boxes")
        if "keypoints" in targets:
            kps = tg.check_keypoints(targets["keypoints"], where)
            kp_labels = _check_labels(targets.get("keypoint_labels"), len(kps), "keypoint_labels", where)
        box_keep = None if boxes is None else (np.arange(len(boxes)) if self.strict_boxes else entry_keep)
        kp_keep = None if kps is None else np.arange(len(kps))

        run = _Runner(image, masks, self.fuse)
        for t, params, geo in steps:
            if run.final is not None:
                raise ValueError(f"{where}: {run.final} must be the last transform, got {type(t).__name__} after it")
            if geo is not None:
                m, out_shape = geo
                run.geometric(m, out_shape, t.warp_settings())
                if boxes is not None:
                    boxes, keep = tg.clip_and_filter(tg.transform_boxes(boxes, m), out_shape,
                                                     self.min_area, self.min_visibility)
                    box_keep = box_keep[keep]
                if kps is not None:
                    kps = tg.transform_keypoints(kps, m)
                    if self.remove_invisible_keypoints:
                        keep = tg.visible_keypoints(kps, out_shape)
                        kps, kp_keep = kps[keep], kp_keep[keep]
            else:
                run.pixel(t, params)
        image, masks = run.finish()
        if not as_dict:
            return image
        out = {"image": image}
        if single_mask:
            out["mask"] = masks[0]
        elif masks is not None:
            out["masks"] = masks
        if boxes is not None:
            out["boxes"] = tg.voc_to_boxes(boxes, self.box_format, run.shape)
            if labels is not None:
                out["labels"] = _subset(labels, box_keep)
        if kps is not None:
            out["keypoints"] = kps
            if kp_labels is not None:
                out["keypoint_labels"] = _subset(kp_labels, kp_keep)
        out["params"] = record
        return out


class _Runner:
    """Executes steps, holding back warps and lookup tables until they must be applied."""

    def __init__(self, image, masks, fuse: bool):
        self.image, self.masks, self.fuse = image, masks, fuse
        self.inputs = [id(image)] + [id(m) for m in masks or []]
        self.shape = image.shape[:2]
        self.matrix = None
        self.settings = None
        self.extended = False
        self.cuts = []  # (matrix, in_shape, out_shape) of the held-back steps: see ``cropped``
        self.lut = None
        self.final = None

    def geometric(self, m, out_shape, settings):
        border = settings[1]
        # Fusing must not change what the pipeline means. A step that samples outside its
        # input (a border) would see, through the fused matrix, pixels an earlier step had
        # cut away (a crop, a rotation's corners): it starts a new pass. Repeating a
        # reflection is not the same as reflecting once, so after a border step only
        # constant/edge borders (which are idempotent) may join.
        joinable = (self.matrix is not None and self.fuse and self.lut is None
                    and _compatible(self.settings, settings)
                    and (border is None or (not self.cropped()
                                            and (not self.extended or border in ("constant", "edge")))))
        if not joinable:
            self._flush()
        if self.matrix is None:
            self.matrix, self.settings, self.extended, self.cuts = m, settings, False, []
        else:
            self.matrix = m @ self.matrix
            self.settings = tuple(a if a is not None else b for a, b in zip(self.settings, settings))
        self.cuts.append((m, self.shape, out_shape))
        self.extended |= border is not None
        self.shape = tuple(out_shape)

    def cropped(self) -> bool:
        """Whether a held-back step cut part of its input away (asked only by border steps)."""
        return any(_discards(*cut) for cut in self.cuts)

    def pixel(self, t, params):
        if self.fuse and isinstance(t, ToneCurve) and self.image.dtype == np.uint8:
            # held back: tables multiply, and the warp kernel applies the table as it unpacks
            table = t.lut(**params)
            self.lut = table if self.lut is None else table[self.lut]
            return
        self._flush()
        self.image = t.apply(self.image, **params)
        if self.masks:
            self.masks = [t.apply_to_mask(m, **params) for m in self.masks]
        if getattr(t, "final", False):
            self.final = type(t).__name__

    def _flush(self):
        """Apply the held-back warp, then the held-back table (that is their order)."""
        if self.matrix is not None:
            interpolation, border, fill, fill_mask = self.settings
            # no transform in the group asked for a border: sampling stays inside the
            # image, and clamping at its edge is what resizing needs (Pillow, OpenCV)
            border = border or "edge"
            fill = 0 if fill is None else (fill[0] if len(fill) == 1 else fill)
            fill_mask = 0 if fill_mask is None else (fill_mask[0] if len(fill_mask) == 1 else fill_mask)
            out_shape = self.shape
            self.image = warp.warp_image(self.image, self.matrix, out_shape, interpolation or "bilinear",
                                         border, image_fill(fill, self.image.dtype), lut=self.lut)
            if self.masks:
                self.masks = [warp.warp_mask(m, self.matrix, out_shape, border, fill_mask) for m in self.masks]
            self.matrix = self.settings = None
        elif self.lut is not None:
            self.image = apply_lut(self.image, self.lut)
        self.lut = None

    def finish(self):
        self._flush()
        image = self.image.copy() if id(self.image) in self.inputs else self.image
        masks = self.masks
        if masks:
            masks = [m.copy() if id(m) in self.inputs else m for m in masks]
        return image, masks


def _discards(m, in_shape, out_shape) -> bool:
    """Whether part of the input frame lands outside the output frame (is cut away)."""
    h, w = in_shape
    oh, ow = out_shape
    (a, b, c), (d, e, f) = m[0].tolist(), m[1].tolist()
    eps = 1e-6
    for x, y in ((0, 0), (w, 0), (0, h), (w, h)):
        u, v = a * x + b * y + c, d * x + e * y + f
        if u < -eps or v < -eps or u > ow + eps or v > oh + eps:
            return True
    return False


def _compatible(a, b) -> bool:
    for x, y in zip(a, b):
        if x is not None and y is not None and x != y:
            return False
    return True


def _parse_call(args, rng, targets, where):
    if len(args) > 2:
        raise TypeError(f"{where}: expected (image) or (image, rng) positionally, got {len(args)} arguments")
    if len(args) == 2:
        if rng is not None:
            raise TypeError(f"{where}: rng given both positionally and by keyword")
        rng = args[1]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise TypeError(f"{where}: unknown target(s) {', '.join(unknown)}; accepted: {', '.join(TARGETS)}")
    if args:
        if "image" in targets:
            raise TypeError(f"{where}: image given both positionally and by keyword")
        image = args[0]
        as_dict = bool(targets)
    else:
        if "image" not in targets:
            raise TypeError(f"{where}: no image given; call pipe(image) or pipe(image=..., ...)")
        image = targets.pop("image")
        as_dict = True
    return check_image(image, where), rng, as_dict


def _collect_masks(targets, shape, where):
    if "mask" in targets and "masks" in targets:
        raise TypeError(f"{where}: give either mask or masks, not both")
    if "mask" in targets:
        masks, single = [targets["mask"]], True
    elif "masks" in targets:
        masks, single = list(targets["masks"]), False
    else:
        return None, False
    for i, m in enumerate(masks):
        name = "mask" if single else f"masks[{i}]"
        if not isinstance(m, np.ndarray) or m.ndim not in (2, 3) or m.dtype.kind not in "biuf":
            raise TypeError(f"{where}: {name} must be a numeric array (H, W) or (H, W, K), got "
                            f"{getattr(m, 'shape', type(m).__name__)}")
        if m.shape[:2] != tuple(shape):
            raise ValueError(f"{where}: {name} shape {m.shape[:2]} does not match image shape {tuple(shape)}")
    return masks, single


def _check_labels(labels, n: int, name: str, where: str):
    if labels is None:
        return None
    if len(labels) != n:
        raise ValueError(f"{where}: {name} has {len(labels)} entries for {n} {'boxes' if name == 'labels' else 'keypoints'}")
    return labels


def _subset(labels, keep):
    if isinstance(labels, np.ndarray):
        return labels[keep]
    return [labels[int(i)] for i in keep]


@register
class OneOf(Container):
    """Run exactly one child, chosen with probability proportional to ``weights`` (default equal)."""

    def __init__(self, transforms, weights=None, p: float = 1.0):
        super().__init__(transforms, p)
        if not self.transforms:
            raise ValueError("OneOf: transforms must not be empty")
        self.weights = weights
        w = np.ones(len(self.transforms)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.transforms),) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"OneOf: weights must be {len(self.transforms)} non-negative numbers with a "
                             f"positive sum, got {weights!r}")
        self._cum = np.cumsum(w / w.sum())

    def _choose(self, rng):
        i = int(min(np.searchsorted(self._cum, rng.random(), side="right"), len(self.transforms) - 1))
        return [i], {"choice": i}

    def _chosen_from(self, record):
        return [int(record.get("choice", -1))]


@register
class SomeOf(Container):
    """Run ``n`` distinct children chosen at random (kept in list order).

    Args:
        n: a count, or a ``(low, high)`` pair for a count drawn uniformly (inclusive).
    """

    def __init__(self, transforms, n=1, p: float = 1.0):
        super().__init__(transforms, p)
        self.n = n
        pair = (n, n) if isinstance(n, (int, np.integer)) and not isinstance(n, bool) else n
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"SomeOf: n must be an int or a (low, high) pair, got {n!r}")
        lo = check_positive_int(pair[0], "SomeOf", "n", minimum=0)
        hi = check_positive_int(pair[1], "SomeOf", "n", minimum=0)
        if lo > hi or hi > len(self.transforms):
            raise ValueError(f"SomeOf: n must satisfy 0 <= low <= high <= {len(self.transforms)} "
                             f"(number of transforms), got {n!r}")
        self._n = (lo, hi)

    def _choose(self, rng):
        k = int(rng.integers(self._n[0], self._n[1] + 1))
        chosen = sorted(int(i) for i in rng.choice(len(self.transforms), size=k, replace=False))
        return chosen, {"choices": chosen}

    def _chosen_from(self, record):
        return [int(i) for i in record.get("choices", [])]


@register
class RandomApply(Container):
    """Run all children in order, with probability ``p`` for the whole group (torchvision's RandomApply)."""

    def __init__(self, transforms, p: float = 0.5):
        super().__init__(transforms, check_probability(p, "RandomApply"))

"""Augmentation throughput of the standard pipeline: zerodl vs albumentations (when installed).

The pipeline: horizontal flip (p 0.5), affine (rotate +-15 deg, translate +-10%,
scale 0.9-1.1), random-resized crop to 224x224, brightness/contrast +-0.2,
over ``--images`` generated ``--size``-square RGB uint8 images. Each library
runs single-process and over a process pool of ``--workers`` (images are
generated inside each worker so only indices and a checksum cross process
boundaries). OpenCV keeps its default threads in the single-process run and
gets one thread per worker in the pool run. For reference it also times the
same steps written plainly with Pillow (one resampling per step).

Run: ``python bench/augment.py [--images 512] [--workers 2] [--repeats 3]``.
Figures are the best of ``--repeats`` timed passes after a warm-up; the last
line printed is a JSON object of the figures. zerodl's outputs are checked to
be identical single-process and pooled (per-image seeds from (seed, index)).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.augment import get_preset  # noqa: E402
from core.augment.base import derive_rng  # noqa: E402

_STATE: dict = {}


def make_images(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth colour gradients plus noise: like photos, not like white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        a = rng.uniform(0, 6, size=(3, 3))
        planes = [128 + 90 * np.sin(a[c, 0] * xx + a[c, 1] * yy + a[c, 2]) for c in range(3)]
        noisy = np.stack(planes, -1) + rng.normal(0, 12, (size, size, 3))
        out[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def zerodl_pipeline():
    return get_preset("benchmark")


def albumentations_pipeline(seed: int):
    import albumentations as A

    try:
        crop = A.RandomResizedCrop(size=(224, 224))
    except TypeError:  # albumentations < 1.4 spells the size out
        crop = A.RandomResizedCrop(224, 224)
    steps = [
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), p=1.0),
        crop,
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0),
    ]
    try:
        return A.Compose(steps, seed=seed)
    except TypeError:  # albumentations < 1.4.18 has no seed argument
        return A.Compose(steps)


def run_pillow_sequential(images, indices, seed) -> None:
    """The same pipeline written plainly with Pillow, one resampling per step (a reference)."""
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(seed)
    for i in indices:
        im = Image.fromarray(images[i])
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        w, h = im.size
        im = im.rotate(rng.uniform(-15, 15), Image.Resampling.BILINEAR,
                       translate=(rng.uniform(-0.1, 0.1) * w, rng.uniform(-0.1, 0.1) * h))
        s = rng.uniform(0.9, 1.1)
        im = im.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR).crop(
            (round((w * s - w) / 2), round((h * s - h) / 2), round((w * s - w) / 2) + w, round((h * s - h) / 2) + h))
        area = rng.uniform(0.08, 1.0) * w * h
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = min(w, round(np.sqrt(area * ratio))), min(h, round(np.sqrt(area / ratio)))
        x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        im = im.resize((224, 224), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.8, 1.2))
        im = ImageEnhance.Contrast(im).enhance(rng.uniform(0.8, 1.2))
        np.asarray(im)


def run_zerodl(images, indices, seed, pipe) -> list[int]:
    return [int(pipe(images[i], derive_rng(seed, i)).sum(dtype=np.int64)) for i in indices]


def run_albumentations(images, indices, pipe) -> list[int]:
    return [int(pipe(image=images[i])["image"].sum(dtype=np.int64)) for i in indices]


def _init_worker(library: str, n: int, size: int, seed: int) -> None:
    _STATE["images"] = make_images(n, size, seed)
    _STATE["seed"] = seed
    if library == "zerodl":
        _STATE["pipe"] = zerodl_pipeline()
    else:
        import cv2

        cv2.setNumThreads(1)  # the pool supplies the parallelism
        _STATE["pipe"] = albumentations_pipeline(seed + os.getpid())


def _worker(job):
    library, indices = job
    if library == "zerodl":
        return run_zerodl(_STATE["images"], indices, _STATE["seed"], _STATE["pipe"])
    return run_albumentations(_STATE["images"], indices, _STATE["pipe"])


def best_rate(fn, n: int, repeats: int) -> float:
    fn()  # warm-up (caches, lazily imported modules, pool start)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / min(times)


def pooled(library: str, args) -> tuple[float, list[int]]:
    chunks = [list(range(i, min(args.images, i + 16))) for i in range(0, args.images, 16)]
    # spawn, not fork: a forked child inherits OpenCV's thread pool locks mid-use and can hang forever.
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(library, args.images, args.size, args.seed)) as pool:
        result = {}

        def one_pass():
            result["sums"] = [s for part in pool.map(_worker, [(library, c) for c in chunks]) for s in part]

        rate = best_rate(one_pass, args.images, args.repeats)
    return rate, result["sums"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512, help="images per pass")
    parser.add_argument("--size", type=int, default=256, help="side of the generated square images")
    parser.add_argument("--workers", type=int, default=2, help="processes in the pooled runs")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (the best counts)")
    parser.add_argument("--seed", type=int, default=0, help="seed of images and augmentations")
    args = parser.parse_args(argv)

    images = make_images(args.images, args.size, args.seed)
    pipe = zerodl_pipeline()
    single = {}

    def zerodl_once():
        single["sums"] = run_zerodl(images, range(args.images), args.seed, pipe)

    figures = {"bench": "augment", "images": args.images, "size": args.size, "workers": args.workers,
               "cpus": os.cpu_count()}
    figures["zerodl_single_ips"] = round(best_rate(zerodl_once, args.images, args.repeats), 1)
    figures["zerodl_pool_ips"], pool_sums = pooled("zerodl", args)
    figures["zerodl_pool_ips"] = round(figures["zerodl_pool_ips"], 1)
    figures["zerodl_pool_identical"] = pool_sums == single["sums"]
    rate = best_rate(lambda: run_pillow_sequential(images, range(args.images), args.seed), args.images, args.repeats)
    figures["pillow_sequential_single_ips"] = round(rate, 1)
    print(f"Pillow, one resampling per step (reference) {figures['pillow_sequential_single_ips']:8.1f} img/s")
    print(f"zerodl          single {figures['zerodl_single_ips']:8.1f} img/s   "
          f"pool({args.workers}) {figures['zerodl_pool_ips']:8.1f} img/s   "
          f"(pool output identical: {figures['zerodl_pool_identical']})")
    try:
        import albumentations
        import cv2
    except ImportError:
        print("albumentations not importable: no comparison")
    else:
        figures["albumentations_version"] = albumentations.__version__
        figures["cv2_threads_single"] = cv2.getNumThreads()
        apipe = albumentations_pipeline(args.seed)
        rate = best_rate(lambda: run_albumentations(images, range(args.images), apipe), args.images, args.repeats)
        figures["albumentations_single_ips"] = round(rate, 1)
        figures["albumentations_pool_ips"] = round(pooled("albumentations", args)[0], 1)
        figures["ratio_single"] = round(figures["zerodl_single_ips"] / figures["albumentations_single_ips"], 3)
        figures["ratio_pool"] = round(figures["zerodl_pool_ips"] / figures["albumentations_pool_ips"], 3)
        best_ours = max(figures["zerodl_single_ips"], figures["zerodl_pool_ips"])
        best_theirs = max(figures["albumentations_single_ips"], figures["albumentations_pool_ips"])
        figures["ratio_best"] = round(best_ours / best_theirs, 3)
        print(f"albumentations  single {figures['albumentations_single_ips']:8.1f} img/s   "
              f"pool({args.workers}) {figures['albumentations_pool_ips']:8.1f} img/s   "
              f"(OpenCV threads in the single run: {figures['cv2_threads_single']})")
        print(f"zerodl / albumentations: single {figures['ratio_single']:.2f}x, pool {figures['ratio_pool']:.2f}x, "
              f"best vs best {figures['ratio_best']:.2f}x")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

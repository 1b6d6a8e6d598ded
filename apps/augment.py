"""``zerodl augment``: run an augmentation pipeline over an image folder.

Writes COPIES augmented versions of every image under INPUT_DIR (and of its
same-named mask under --masks) into OUTPUT_DIR:

  OUTPUT_DIR/images/<sub/dir>/<name>_aug<k>.<ext>   augmented images (format kept)
  OUTPUT_DIR/masks/<sub/dir>/<name>_aug<k>.png      augmented masks (with --masks)
  OUTPUT_DIR/manifest.jsonl    one JSON line per output: source, output, sampled params
  OUTPUT_DIR/pipeline.json     the pipeline and seed (reproduce any output with
                               load_pipeline(...).replay(params, image=...))
  OUTPUT_DIR/preview.png       originals beside their augmentations, masks overlaid

The randomness of copy k of file f comes from (seed, f, k) alone: any worker
count gives the same files, and re-running after an interruption only
writes the outputs that are missing. INPUT_DIR is never written to.

Examples:
  zerodl augment photos/ out/ --pipeline classification-strong --copies 5 --seed 1
  zerodl augment imgs/ out/ --masks labels/ --pipeline segmentation --workers 2
  zerodl augment imgs/ out/ --pipeline my_pipeline.toml
  zerodl augment --demo            # matplotlib's sample photos -> runs/augment/demo
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

DEMO_DIR = Path("runs") / "augment" / "demo"
DEMO_PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def add_parser(subparsers) -> None:
    from apps.cli import HelpFormatter
    from core.augment.presets import PRESETS

    p = subparsers.add_parser("augment", help="augment an image folder (with masks) into N copies each",
                              description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("input_dir", nargs="?", type=Path, metavar="INPUT_DIR",
                   help="folder of images (searched recursively); with --demo, the output folder")
    p.add_argument("output_dir", nargs="?", type=Path, metavar="OUTPUT_DIR",
                   help="folder for the outputs; must not be inside INPUT_DIR")
    p.add_argument("--pipeline", default=None,
                   help=f"preset ({', '.join(sorted(PRESETS))}) or a .json/.toml pipeline file "
                        "(default: classification-light; segmentation with --demo)")
    p.add_argument("--copies", type=int, default=4, help="augmented copies per image")
    p.add_argument("--seed", type=int, default=0, help="seed; copy k of file f uses (seed, f, k)")
    p.add_argument("--masks", type=Path, default=None, metavar="MASK_DIR",
                   help="folder of label masks named like the images (any of .png .bmp .tif .webp)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--preview", type=Path, default=None, metavar="PNG",
                   help="where to write the preview grid (default OUTPUT_DIR/preview.png)")
    p.add_argument("--preview-rows", type=int, default=4, help="originals shown in the preview")
    p.add_argument("--preview-cell", type=int, default=160, help="size in pixels of a preview thumbnail")
    p.add_argument("--skip-bad", action="store_true",
                   help="exit 0 even when some files could not be read (they are still listed)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--demo", action="store_true",
                   help="augment matplotlib's bundled sample photos (with generated masks) and write the preview")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- worker side
_PIPELINES: dict = {}


def _pipeline_from(spec_json: str):
    pipe = _PIPELINES.get(spec_json)
    if pipe is None:
        from core.augment.serialize import from_dict

        pipe = _PIPELINES[spec_json] = from_dict(json.loads(spec_json))
    return pipe


def output_names(rel: str, copy: int, with_mask: bool) -> tuple[str, str | None]:
    """Deterministic output paths (relative to OUTPUT_DIR) of copy ``copy`` of ``rel``."""
    path = Path(rel)
    stem = f"{path.stem}_aug{copy:03d}"
    image = (Path("images") / path.parent / f"{stem}{path.suffix.lower()}").as_posix()
    mask = (Path("masks") / path.parent / f"{stem}.png").as_posix() if with_mask else None
    return image, mask


def process_file(job: dict) -> dict:
    """Augment one source file into its missing copies; never raises (errors are returned)."""
    from core.augment.base import derive_rng
    from core.augment.io import read_image, read_mask, write_image, write_mask

    rel = job["rel"]
    try:
        image = read_image(Path(job["input_dir"]) / rel)
        mask = palette = None
        if job["mask"] is not None:
            mask, palette = read_mask(Path(job["mask_dir"]) / job["mask"])
            if mask.shape[:2] != image.shape[:2]:
                raise ValueError(f"mask {job['mask']} is {mask.shape[1]}x{mask.shape[0]} but the image is "
                                 f"{image.shape[1]}x{image.shape[0]}")
    except Exception as exc:  # unreadable/corrupt input: reported, not fatal
        return {"rel": rel, "entries": [], "error": f"{type(exc).__name__}: {exc}"}
    pipe = _pipeline_from(job["spec"])
    out_dir = Path(job["output_dir"])
    entries = []
    try:
        for copy in job["copies"]:
            rng = derive_rng(job["seed"], rel, copy)
            if mask is None:
                res = pipe(image=image, rng=rng)
            else:
                res = pipe(image=image, mask=mask, rng=rng)
            out_image, out_mask = output_names(rel, copy, mask is not None)
            write_image(out_dir / out_image, res["image"])
            if mask is not None:
                write_mask(out_dir / out_mask, res["mask"], palette)
            entries.append({"source": rel, "mask": job["mask"], "copy": copy, "output": out_image,
                            "output_mask": out_mask, "params": res["params"]})
    except Exception as exc:
        return {"rel": rel, "entries": entries, "error": f"{type(exc).__name__}: {exc}"}
    return {"rel": rel, "entries": entries, "error": None}


# --------------------------------------------------------------------------- main side
def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _load_pipeline(name: str | None):
    from core.augment.presets import PRESETS, get_preset
    from core.augment.serialize import load_pipeline

    if name in PRESETS:
        return get_preset(name)
    path = Path(name)
    if path.suffix.lower() not in (".json", ".toml"):
        raise ValueError(f"--pipeline: {name!r} is neither a preset ({', '.join(sorted(PRESETS))}) "
                         "nor a .json/.toml file")
    if not path.is_file():
        raise ValueError(f"--pipeline: file {name} not found")
    return load_pipeline(path)


def _check_writes_images(pipe) -> None:
    """Conversions to float/CHW are for training; files need uint8 (H, W, C) images."""
    stack = [pipe]
    while stack:
        t = stack.pop()
        stack.extend(getattr(t, "transforms", []))
        if not t.keeps_dtype:
            raise ValueError(f"--pipeline: {type(t).__name__} turns images into float/CHW arrays, which cannot be "
                             "written as image files; drop it from the pipeline used by this app")


def _find_mask(mask_dir: Path, rel: str) -> str | None:
    from core.augment.io import MASK_EXTENSIONS

    base = Path(rel).with_suffix("")
    for ext in MASK_EXTENSIONS:
        for candidate in (base.with_suffix(ext), base.with_suffix(ext.upper())):
            if (mask_dir / candidate).is_file():
                return candidate.as_posix()
    return None


def _read_manifest(path: Path) -> dict:
    """Entries already recorded, keyed by (source, copy); a torn last line is ignored."""
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                done[(entry["source"], int(entry["copy"]))] = entry
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _stage_demo(out_dir: Path) -> tuple[Path, Path]:
    """Copy the sample photos into OUT/input/images and write luminance-band masks beside them."""
    import numpy as np
    from matplotlib import cbook

    from core.augment.io import read_image, write_image, write_mask
    from core.augment.pixel import blur_float

    images, masks = out_dir / "input" / "images", out_dir / "input" / "masks"
    for name in DEMO_PHOTOS:
        image = read_image(cbook.get_sample_data(name, asfileobj=False))
        write_image(images / name, image)
        grey = (image[..., :3].mean(axis=2) if image.ndim == 3 else image.astype(float)) / 255.0
        # smoothed brightness bands: region outlines follow the photo's large shapes,
        # so a mask that drifted from its image is visible in the preview
        grey = blur_float(grey, sigma=max(image.shape[:2]) / 80)
        labels = np.digitize(grey, np.quantile(grey, [0.4, 0.75])).astype(np.uint8)
        if image.ndim == 3 and image.shape[2] == 4:
            labels[image[..., 3] < 128] = 0
        write_mask(masks / (Path(name).stem + ".png"), labels)
    return images, masks


def run(args) -> int:
    from core.augment.io import find_images, read_image, read_mask, write_image
    from core.augment.preview import make_grid

    started = time.time()
    if args.demo:
        if args.output_dir is not None:
            print("error: --demo takes at most one folder (where to write), got two")
            return 2
        out_dir = args.input_dir or DEMO_DIR
        input_dir, mask_dir = _stage_demo(out_dir)
        pipeline_name = args.pipeline or "segmentation"
    else:
        if args.input_dir is None or args.output_dir is None:
            print("error: INPUT_DIR and OUTPUT_DIR are required (or use --demo)")
            return 2
        input_dir, out_dir, mask_dir = args.input_dir, args.output_dir, args.masks
        pipeline_name = args.pipeline or "classification-light"
    for name in ("copies", "workers", "preview_rows", "preview_cell"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
            return 2
    if not input_dir.is_dir():
        print(f"error: INPUT_DIR {input_dir} is not a folder")
        return 2
    if mask_dir is not None and not mask_dir.is_dir():
        print(f"error: --masks {mask_dir} is not a folder")
        return 2
    preview_path = args.preview or out_dir / "preview.png"
    for folder, what in ((input_dir, "INPUT_DIR"), (mask_dir, "MASK_DIR")):
        if folder is None:
            continue
        if _inside(out_dir, folder):
            print(f"error: OUTPUT_DIR {out_dir} is inside {what} {folder}; choose a folder outside it")
            return 2
        if _inside(preview_path, folder):
            print(f"error: --preview {preview_path} is inside {what} {folder}; it is never written to")
            return 2
    try:
        pipe = _load_pipeline(pipeline_name)
        _check_writes_images(pipe)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}")
        return 2

    from core.augment.serialize import to_dict

    spec = to_dict(pipe)
    config = {"pipeline": spec, "seed": args.seed, "masks": mask_dir is not None}
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "pipeline.json"
    if config_path.is_file():
        try:
            previous = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
        if previous != config:
            print(f"error: {out_dir} holds outputs of a different pipeline, seed or mask setting "
                  f"(see {config_path}); use a new OUTPUT_DIR or delete that one")
            return 2
    else:
        from core.serialization import atomic_write_bytes

        atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode())

    sources = find_images(input_dir)
    if not sources:
        print(f"error: no images ({', '.join(('.jpg', '.png', '.bmp', '.tif', '.webp'))}) found in {input_dir}")
        return 2
    failures: dict[str, str] = {}
    manifest_path = out_dir / "manifest.jsonl"
    recorded = _read_manifest(manifest_path)
    jobs, present = [], 0
    mask_owner: dict[str, str] = {}
    spec_json = json.dumps(spec, sort_keys=True)
    for rel in sources:
        mask_rel = None
        if mask_dir is not None:
            mask_rel = _find_mask(mask_dir, rel)
            if mask_rel is None:
                failures[rel] = f"no mask named {Path(rel).with_suffix('.png').as_posix()} (or .bmp/.tif/.webp) in {mask_dir}"
                continue
            stem_key = Path(rel).with_suffix("").as_posix()
            if stem_key in mask_owner:
                failures[rel] = f"shares its mask and output names with {mask_owner[stem_key]}"
                continue
            mask_owner[stem_key] = rel
        todo = []
        for copy in range(args.copies):
            out_image, out_mask = output_names(rel, copy, mask_rel is not None)
            done = (rel, copy) in recorded and (out_dir / out_image).is_file() and (
                out_mask is None or (out_dir / out_mask).is_file())
            present += done
            if not done:
                todo.append(copy)
        if todo:
            jobs.append({"rel": rel, "mask": mask_rel, "copies": todo, "seed": args.seed, "spec": spec_json,
                         "input_dir": str(input_dir), "mask_dir": str(mask_dir) if mask_dir else None,
                         "output_dir": str(out_dir)})

    written = _run_jobs(jobs, args, manifest_path, recorded, failures)
    _rewrite_manifest(manifest_path, recorded)

    # preview: the first few originals beside the copies read back from disk
    rows = []
    for rel in [s for s in sources if s not in failures][:args.preview_rows]:
        entries = [recorded[(rel, k)] for k in range(args.copies) if (rel, k) in recorded][:6]
        if not entries:
            continue
        image = read_image(input_dir / rel)
        mask = read_mask(mask_dir / entries[0]["mask"])[0] if mask_dir is not None else None
        row = [(image, mask)]
        for e in entries:
            out_mask = read_mask(out_dir / e["output_mask"])[0] if e["output_mask"] else None
            row.append((read_image(out_dir / e["output"]), out_mask))
        rows.append(row)
    if rows:
        write_image(preview_path, make_grid(rows, cell=args.preview_cell), optimize=True)

    total = len(recorded)
    print(f"augmented {len(sources) - len(failures)}/{len(sources)} images: {written} outputs written, "
          f"{present} already present, {total} in {manifest_path} ({time.time() - started:.1f} s)")
    if rows:
        print(f"preview: {preview_path}")
    if failures:
        print(f"{len(failures)} file(s) failed:")
        for rel, why in sorted(failures.items()):
            print(f"  {rel}: {why}")
        return 0 if args.skip_bad else 1
    return 0


def _run_jobs(jobs, args, manifest_path: Path, recorded: dict, failures: dict) -> int:
    from tqdm import tqdm

    written = 0
    jobs_by_rel = {j["rel"]: j for j in jobs}
    tqdm.monitor_interval = 0  # no monitor thread: worker processes are forked after the bar exists
    bar = tqdm(total=sum(len(j["copies"]) for j in jobs), unit="img", desc="augment",
               disable=args.no_progress or not jobs, file=sys.stderr)
    with open(manifest_path, "a", encoding="utf-8") as manifest:
        def collect(result):
            nonlocal written
            for entry in result["entries"]:
                manifest.write(json.dumps(entry) + "\n")
                recorded[(entry["source"], entry["copy"])] = entry
            manifest.flush()  # an interrupted run keeps every finished line
            written += len(result["entries"])
            if result["error"]:
                failures[result["rel"]] = result["error"]
            bar.update(len(jobs_by_rel[result["rel"]]["copies"]))

        if args.workers == 1 or len(jobs) < 2:
            for job in jobs:
                collect(process_file(job))
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs))) as pool:
                for future in as_completed([pool.submit(process_file, job) for job in jobs]):
                    collect(future.result())
    bar.close()
    return written


def _rewrite_manifest(path: Path, recorded: dict) -> None:
    """Sorted, one line per output: appends from interrupted runs are merged away."""
    from core.serialization import atomic_write_bytes

    lines = [json.dumps(recorded[k]) for k in sorted(recorded)]
    atomic_write_bytes(path, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))


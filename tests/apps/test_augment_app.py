"""``zerodl augment`` run as a user would: folders, masks, corrupt files, resume, workers, demo."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.augment import load_pipeline
from core.augment.io import read_image, read_mask

ROOT = Path(__file__).resolve().parents[2]


def zerodl(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "apps", "augment", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def make_dataset(root: Path, n=3, masks=True):
    rng = np.random.default_rng(0)
    images, mask_dir = root / "images", root / "masks"
    (images / "cats").mkdir(parents=True)
    mask_dir.mkdir(parents=True)
    names = ["cats/a.jpg", "b.png", "cats/c.png"][:n]
    for i, name in enumerate(names):
        pixels = rng.integers(0, 256, (40 + 4 * i, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name)
        if masks:
            label = np.zeros(pixels.shape[:2], np.uint8)
            label[10:30, 12:40] = i + 1
            (mask_dir / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(label).save((mask_dir / name).with_suffix(".png"))
    return images, mask_dir, names


def snapshot(folder: Path):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def manifest(out: Path):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_augments_images_and_masks_reproducibly(tmp_path):
    images, masks, names = make_dataset(tmp_path)
    before = snapshot(tmp_path / "images")
    out = tmp_path / "out"
    res = zerodl(images, out, "--masks", masks, "--pipeline", "segmentation", "--copies", 2, "--seed", 3)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "augmented 3/3 images: 6 outputs written" in res.stdout
    assert snapshot(tmp_path / "images") == before  # INPUT_DIR untouched
    assert (out / "images/cats/a_aug001.jpg").is_file() and (out / "masks/cats/c_aug000.png").is_file()
    assert (out / "preview.png").is_file()
    entries = manifest(out)
    assert [(e["source"], e["copy"]) for e in entries] == sorted((n, k) for n in names for k in range(2))
    # any output can be rebuilt from the manifest: pipeline.json + the recorded params
    pipe = load_pipeline_from(out)
    entry = next(e for e in entries if e["source"] == "b.png" and e["copy"] == 1)
    again = pipe.replay(entry["params"], image=read_image(images / "b.png"), mask=read_mask(masks / "b.png")[0])
    np.testing.assert_array_equal(again["image"], read_image(out / entry["output"]))
    np.testing.assert_array_equal(again["mask"], read_mask(out / entry["output_mask"])[0])
    # labels survive the trip: only the source label and background (0)
    assert set(np.unique(read_mask(out / entry["output_mask"])[0])) <= {0, 2}


def load_pipeline_from(out: Path):
    config = json.loads((out / "pipeline.json").read_text())
    (out / "p.json").write_text(json.dumps(config["pipeline"]))
    return load_pipeline(out / "p.json")


def test_worker_count_does_not_change_outputs(tmp_path):
    images, masks, _ = make_dataset(tmp_path)
    one = zerodl(images, tmp_path / "one", "--masks", masks, "--copies", 2, "--workers", 1)
    two = zerodl(images, tmp_path / "two", "--masks", masks, "--copies", 2, "--workers", 2)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = snapshot(tmp_path / "one"), snapshot(tmp_path / "two")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_corrupt_file_is_named_and_skipped(tmp_path):
    images, _, _ = make_dataset(tmp_path, masks=False)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    good = (images / "b.png").read_bytes()
    (images / "truncated.png").write_bytes(good[: len(good) // 2])
    res = zerodl(images, tmp_path / "out", "--copies", 1)
    assert res.returncode == 1
    assert "2 file(s) failed" in res.stdout and "broken.jpg:" in res.stdout and "truncated.png:" in res.stdout
    assert "augmented 3/5 images" in res.stdout
    assert len(manifest(tmp_path / "out")) == 3
    res = zerodl(images, tmp_path / "out", "--copies", 1, "--skip-bad")
    assert res.returncode == 0 and "broken.jpg" in res.stdout and "0 outputs written, 3 already present" in res.stdout


def test_missing_mask_is_a_failure(tmp_path):
    images, masks, _ = make_dataset(tmp_path)
    (masks / "b.png").unlink()
    res = zerodl(images, tmp_path / "out", "--masks", masks, "--copies", 1)
    assert res.returncode == 1 and "b.png: no mask named b.png" in res.stdout


def test_refuses_output_inside_input_and_bad_pipelines(tmp_path):
    images, _, _ = make_dataset(tmp_path, masks=False)
    before = snapshot(images)
    res = zerodl(images, images / "aug")
    assert res.returncode == 2 and "is inside INPUT_DIR" in res.stdout
    res = zerodl(images, tmp_path / "o", "--preview", images / "p.png")
    assert res.returncode == 2 and "--preview" in res.stdout
    assert snapshot(images) == before
    res = zerodl(images, tmp_path / "o2", "--pipeline", "classification-huge")
    assert res.returncode == 2 and "neither a preset" in res.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "Compose"\n[[transforms]]\nname = "Rotat"\n')
    res = zerodl(images, tmp_path / "o3", "--pipeline", bad)
    assert res.returncode == 2 and "unknown transform 'Rotat'; did you mean Rotate" in res.stdout
    floaty = tmp_path / "f.json"
    floaty.write_text(json.dumps({"name": "Compose", "transforms": [{"name": "Normalize"}]}))
    res = zerodl(images, tmp_path / "o4", "--pipeline", floaty)
    assert res.returncode == 2 and "Normalize turns images into float" in res.stdout
    res = zerodl(images, tmp_path / "o5", "--copies", 0)
    assert res.returncode == 2 and "--copies must be >= 1, got 0" in res.stdout


def test_resume_completes_only_missing_outputs(tmp_path):
    images, masks, _ = make_dataset(tmp_path)
    out = tmp_path / "out"
    args = (images, out, "--masks", masks, "--copies", 3, "--pipeline", "segmentation")
    assert zerodl(*args).returncode == 0
    full = snapshot(out)
    # simulate an interruption: two outputs never written, a torn manifest line, a stray temp file
    (out / "images/b_aug002.png").unlink()
    (out / "masks/cats/c_aug000.png").unlink()
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:30])
    (out / "images/.b_aug002.png.123.tmp").write_bytes(b"partial")
    untouched = out / "images/cats/a_aug000.jpg"
    os.utime(untouched, (1, 1))
    res = zerodl(*args)
    assert res.returncode == 0, res.stderr + res.stdout
    assert untouched.stat().st_mtime == 1  # finished outputs are not redone
    # kept: b_aug000, b_aug001, a_aug000 (in the manifest and on disk); the rest is redone
    assert "6 outputs written, 3 already present" in res.stdout
    (out / "images/.b_aug002.png.123.tmp").unlink()
    again = snapshot(out)
    for name, data in full.items():
        if name not in ("preview.png",):
            assert again[name] == data, name
    # a different seed in the same folder is refused instead of mixing outputs
    res = zerodl(*args, "--seed", 9)
    assert res.returncode == 2 and "different pipeline, seed or mask setting" in res.stdout


def test_interrupted_run_resumes(tmp_path):
    images, masks, _ = make_dataset(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "apps", "augment", str(images), str(out), "--copies", "40", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest_path = out / "manifest.jsonl"
    try:
        for _ in range(600):  # wait for the first finished file, then interrupt like Ctrl-C
            if manifest_path.is_file() and manifest_path.read_text().count("\n") >= 40:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.send_signal(2)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr + res.stdout
    entries = manifest(out)
    assert len(entries) == 120 and len({e["output"] for e in entries}) == 120
    assert all((out / e["output"]).is_file() for e in entries)


def test_demo_writes_preview(tmp_path):
    res = zerodl("--demo", tmp_path / "demo", "--copies", 2)
    assert res.returncode == 0, res.stderr + res.stdout
    preview = Image.open(tmp_path / "demo" / "preview.png")
    assert preview.size[0] > 300 and preview.size[1] > 100
    assert len(manifest(tmp_path / "demo")) == 4
    assert (tmp_path / "demo" / "masks" / "grace_hopper_aug001.png").is_file()


def test_help_lists_every_option():
    res = subprocess.run([sys.executable, "-m", "apps", "augment", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0
    for option in ("--pipeline", "--copies", "--seed", "--masks", "--workers", "--preview", "--skip-bad", "--demo"):
        assert option in res.stdout
    assert "(default: 4)" in res.stdout

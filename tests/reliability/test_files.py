"""Corrupt files and failing side channels never lose a run: a damaged or foreign checkpoint is one clear error
before training (and never runs code); image files that do not decode are skipped and counted, or stop the
run by option; sample grids and metrics that fail mid-run cost a warning, not the run."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.config import ConfigError
from ganlab.data.folder import ImageFolder
from ganlab.metrics.classifier import Classifier
from ganlab.sample import main as sample_main
from ganlab.train import train

from .. import launcher
from ..conftest import make_cfg

ROOT = Path(__file__).resolve().parents[2]
TOY = ["data=grid25", "net.g.hidden=16", "net.d.hidden=16", "iterations=2"]


# --- checkpoints --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def last_ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy")
    train(make_cfg(out, *TOY))
    return out / "checkpoints" / "last.ckpt"


class Payload:
    """Unpickled, it calls open(marker, "w"): the file appearing means the checkpoint ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def write_bad(kind: str, path: Path, good: Path) -> None:
    if kind == "truncated":  # an interrupted copy
        data = good.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "code":  # what a malicious "checkpoint" looks like: torch.save of an object that runs code
        torch.save({"state_dict": {}, "hook": Payload(path.with_name("ran"))}, path)
    elif kind == "tensor":  # a valid torch file, not ganlab's
        torch.save(torch.zeros(3), path)


BAD_CKPTS = [
    ("truncated", r"is truncated \(\d+ bytes"),
    ("empty", r"is empty \(0 bytes\)"),
    ("random", r"is not a torch checkpoint \(corrupt, or another format\)"),
    ("code", r"unpickling it would call (io|builtins)\.open, and ganlab refuses to run code from a checkpoint.*"
             r"weights_only=False\) would run whatever"),
    ("tensor", r"not a ganlab checkpoint \(no config, shape, ganlab_steps, state_dict\)"),
]


def test_the_code_payload_is_live(tmp_path):
    """The fixture is a real attack: torch.load(weights_only=False) runs it (the guard below is not vacuous)."""
    torch.save({"hook": Payload(tmp_path / "ran")}, tmp_path / "evil.ckpt")
    torch.load(tmp_path / "evil.ckpt", weights_only=False)
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("kind, message", BAD_CKPTS, ids=[k for k, _ in BAD_CKPTS])
def test_a_bad_resume_file_fails_before_training(tmp_path, last_ckpt, kind, message):
    bad = tmp_path / "bad.ckpt"
    write_bad(kind, bad, last_ckpt)
    with pytest.raises(ConfigError, match=rf"ckpt_path: {bad} .*{message}"):
        train(make_cfg(tmp_path / "run", *TOY, f"ckpt_path={bad}"))
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "csv").exists()
    with pytest.raises(SystemExit, match=rf"^ganlab: ckpt: {bad} .*{message}"):  # sample.py (and evaluate.py)
        sample_main([f"ckpt={bad}", f"out={tmp_path}/s.npy"])
    assert not (tmp_path / "ran").exists() and not (tmp_path / "s.npy").exists()


@pytest.mark.slow
def test_sample_cli_says_one_line(tmp_path, last_ckpt):  # one case: each python start costs seconds
    bad = tmp_path / "bad.ckpt"
    write_bad("code", bad, last_ckpt)
    r = launcher.run("sample.py", f"ckpt={bad}", f"out={tmp_path}/s.npy", timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"ganlab: ckpt: {bad} ") and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "ran").exists()


# --- image folders ------------------------------------------------------------------------------------------

def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
    return path


def cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory) -> Path:
    """12 good 40x40 images (PNG and JPEG) and 4 that do not decode: a JPEG and a PNG cut in half, random bytes
    named .png, an empty .jpg."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for i in range(12):
        save(root / f"good{i:02d}.{'png' if i % 2 else 'jpg'}", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    cut(save(root / "cut.jpg", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)))
    cut(save(root / "cut.png", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)))
    (root / "noise.png").write_bytes(rng.bytes(2000))
    (root / "empty.jpg").write_bytes(b"")
    return root


FOLDER = ["data=folder", "data.size=32", "data.batch_size=4", "data.num_workers=0", "net.g.ch=8", "net.d.ch=8",
          "iterations=2"]


def test_bad_images_are_skipped_counted_and_training_runs(tmp_path, mixed_root):
    with pytest.warns(UserWarning, match=r"skipped 4 of the 16 image files under .*, 4 cannot be decoded \(.*cut\.jpg: "
                                         r"OSError: image file is truncated.*, cut\.png, empty\.jpg, \.\.\.\)"):
        train(make_cfg(tmp_path, *FOLDER, f"data.path={mixed_root}"))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "data/skipped_files: 4" in (tmp_path / "csv" / "hparams.yaml").read_text()
    dm = ImageFolder(str(mixed_root), size=32, num_workers=2)  # checked by worker processes: the same verdict
    assert dm.skipped_files == 4 and [f.name for f in dm.files] == [f"good{i:02d}.{'png' if i % 2 else 'jpg'}"
                                                                    for i in range(12)]


def test_bad_images_fail_by_option_naming_the_file(tmp_path, mixed_root):
    with pytest.raises(ConfigError, match=rf"data: of the 16 image files under {mixed_root}, 4 cannot be decoded "
                                          rf"\({mixed_root / 'cut.jpg'}: .*data\.bad_images=skip"):
        train(make_cfg(tmp_path, *FOLDER, f"data.path={mixed_root}", "data.bad_images=fail"))
    with pytest.raises(ConfigError, match=r"data\.bad_images must be skip or fail, got 'ignore'"):
        train(make_cfg(tmp_path, *FOLDER, f"data.path={mixed_root}", "data.bad_images=ignore"))


def test_images_smaller_than_the_size(tmp_path):
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 40)] * 6 + [(20, 50), (24, 24)]):
        save(tmp_path / "pics" / f"{i}.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    small = r"2 smaller than data\.size=32 px on the shorter side \(down to 20 px: .*6\.png\).*lower data\.size"
    with pytest.raises(ValueError, match=rf"of the 8 image files under .*pics, {small}.*data\.bad_images=skip"):
        ImageFolder(str(tmp_path / "pics"), size=32, num_workers=0, bad_images="fail")
    with pytest.warns(UserWarning, match=rf"skipped 2 of the 8 .*{small}"):
        assert len(ImageFolder(str(tmp_path / "pics"), size=32, num_workers=0).files) == 6
    assert ImageFolder(str(tmp_path / "pics"), size=20, num_workers=0).skipped_files == 0
    with pytest.raises(ValueError, match=r"no usable images: of the 8 image files .*8 smaller than data\.size=64 px"):
        ImageFolder(str(tmp_path / "pics"), size=64, num_workers=0)  # skipping would leave nothing


def test_modes_decode_to_the_requested_channels(tmp_path):
    """RGBA, palette, CMYK JPEG and 16-bit grey PNG files, each one flat colour, read as RGB and as grey."""
    flat = lambda *rgb: np.full((24, 24, 3), rgb, np.uint8)  # noqa: E731
    save(tmp_path / "rgba.png", np.dstack([flat(200, 0, 0), np.full((24, 24), 128, np.uint8)]))
    save(tmp_path / "palette.png", flat(0, 0, 204), "P")  # a colour of the web palette
    save(tmp_path / "cmyk.jpg", flat(0, 200, 0), "CMYK")
    save(tmp_path / "grey16.png", np.full((24, 24), 32768, np.uint16))  # mode I;16: mid grey, 128 in 8 bits
    assert {p.name: Image.open(p).mode for p in tmp_path.iterdir()} == {
        "rgba.png": "RGBA", "palette.png": "P", "cmyk.jpg": "CMYK", "grey16.png": "I;16"}
    dm = ImageFolder(str(tmp_path), size=16, num_workers=0)
    x = {f.name: dm.dataset()[i][0] for i, f in enumerate(dm.files)}  # (3, 16, 16) each, in [-1, 1]
    u8 = lambda v: v / 127.5 - 1  # noqa: E731
    expected = {"rgba.png": (200, 0, 0), "palette.png": (0, 0, 204), "cmyk.jpg": (0, 200, 0),
                "grey16.png": (128, 128, 128)}
    for name, rgb in expected.items():
        assert x[name].shape == (3, 16, 16)
        assert torch.allclose(x[name].mean((1, 2)), torch.tensor([u8(v) for v in rgb]), atol=0.03), name
    grey = ImageFolder(str(tmp_path), size=16, channels=1, num_workers=0).dataset()
    for i in range(4):
        g = grey[i][0]  # (1, 16, 16)
        assert g.shape == (1, 16, 16) and g.min() >= -1 and g.max() <= 1 and g.std() < 0.01
    assert abs(grey[[f.name for f in dm.files].index("grey16.png")][0].mean() - u8(128)) < 0.01


# --- side channels ------------------------------------------------------------------------------------------

def test_sample_grids_that_cannot_be_written_cost_one_warning(tmp_path):
    (tmp_path / "samples").write_text("a file where the samples folder goes")  # no folder can be made there
    with pytest.warns(UserWarning, match=r"samples: cannot write .*iter_0000001\.png \(FileExistsError") as caught:
        train(make_cfg(tmp_path, *TOY, "callbacks.samples.every=1"))  # two grids fail the same way: one warning
    assert sum("samples: cannot write" in str(w.message) for w in caught) == 1
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_a_failing_evaluation_costs_a_warning_not_the_run(tmp_path, idx_root, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "stats").write_text("a file where the real statistics' folder goes")  # the cache cannot be written
    monkeypatch.setenv("GANLAB_CACHE", str(cache))
    Classifier(channels=1, size=32, width=4).save(tmp_path / "clf.pt")  # loads at setup, as any feature net
    cfg = make_cfg(tmp_path / "run", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16",
                   "iterations=2", "metrics=default", "metrics.every=1", "metrics.n=32", "metrics.features=classifier",
                   f"metrics.classifier={tmp_path / 'clf.pt'}")
    with pytest.warns(UserWarning, match=r"metrics: the evaluation at iteration 1 failed \(FileExistsError") as caught:
        train(cfg)
    assert sum("metrics: the evaluation at iteration" in str(w.message) for w in caught) == 2  # iterations 1, 2
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()

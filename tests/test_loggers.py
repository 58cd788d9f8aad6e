"""W&B and TensorBoard: what a short run writes (read back from the files), critic heat maps, and failures that
cost a warning, never the run."""
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from ganlab.callbacks.samples import critic_of
from ganlab.config import build
from ganlab.images import save_scatter
from ganlab.loggers import has_wandb_credentials
from ganlab.train import build_module, train

from . import launcher
from .conftest import make_cfg, read_metrics

TOY = ["data=grid25", "model=wgan_gp", "iterations=4", "callbacks.samples.every=2", "data.batch_size=64",
       "net.g.hidden=16", "net.d.hidden=16"]


def wandb_records(run_dir: Path) -> list[dict]:
    """The records of an offline run's .wandb transaction log, read by wandb's own reader (`wandb leet
    inspect --json`, one JSON object per record)."""
    env = dict(os.environ, WANDB_MODE="offline")
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
                         capture_output=True, text=True, check=True, env=env, timeout=60).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3) uint8


def logger_warnings(record, name: str) -> list[str]:
    return [str(w.message) for w in record if str(w.message).startswith(f"{name} logger:")]


def test_csv_stays_on_with_any_logger_choice(tmp_path):
    for choice, names in [("csv", ["csv"]), ("wandb", ["csv", "wandb"]), ("tensorboard", ["csv", "tensorboard"]),
                          ("[csv,wandb]", ["csv", "wandb"]), ("[wandb,tensorboard]", ["csv", "wandb", "tensorboard"])]:
        assert list(make_cfg(tmp_path, f"logger={choice}").logger) == names, choice


def test_credentials_come_from_the_environment_or_netrc(tmp_path, monkeypatch, no_credentials):
    assert not has_wandb_credentials()
    (tmp_path / "home").mkdir()
    netrc = tmp_path / "home" / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    netrc.chmod(0o600)
    assert has_wandb_credentials()
    netrc.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert has_wandb_credentials()


def test_wandb_offline_run_holds_metrics_images_and_config(tmp_path, no_credentials):
    cfg = make_cfg(tmp_path, *TOY, "logger=wandb")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(cfg)
    assert not logger_warnings(record, "wandb")
    run_dirs = list((tmp_path / "wandb").glob("offline-run-*"))  # offline without credentials: `wandb sync` later
    assert len(run_dirs) == 1
    records = wandb_records(run_dirs[0])

    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    losses = {row["trainer/global_step"]: row["train/d_loss"] for row in history if "train/d_loss" in row}
    assert sorted(losses) == [1, 2, 3, 4] and all(math.isfinite(v) for v in losses.values())  # step = iteration
    images = {row["trainer/global_step"]: row["samples.filenames"] for row in history if "samples.filenames" in row}
    assert sorted(images) == [2, 4]
    logged = png(run_dirs[0] / "files" / images[4][0])
    assert np.array_equal(logged, png(tmp_path / "samples" / "iter_0000004.png"))  # the same picture

    config = {}
    for r in records:
        if r["type"] == "config":
            config.update(r["config"]["update"])
    for key, value in OmegaConf.to_container(cfg, resolve=True).items():
        assert config[key] == value, key
    assert read_metrics(tmp_path)  # CSV stays on


@pytest.mark.slow
def test_wandb_offline_image_run_holds_fid_images_and_the_feature_network(tmp_path, no_credentials, idx_root,
                                                                        fixture_classifier):
    """The issue's check: a logger=wandb run on images leaves an offline run whose history has val/fid."""
    train(make_cfg(tmp_path, f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16",
                   "iterations=4", "callbacks.samples.every=2", "metrics=default", "metrics.every=2",
                   "metrics.n=64", "metrics.kid_subset=32", "logger=wandb"))
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    records = wandb_records(run_dir)
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    fids = {row["trainer/global_step"]: row["val/fid"] for row in history if "val/fid" in row}
    assert sorted(fids) == [2, 4] and all(v > 0 for v in fids.values())
    assert sorted(row["trainer/global_step"] for row in history if "samples.filenames" in row) == [2, 4]
    config = {}
    for r in records:
        if r["type"] == "config":
            config.update(r["config"]["update"])
    assert config["metrics/features"].startswith("classifier-")  # which network val/fid is on


def test_tensorboard_event_file_holds_scalars_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_cfg(tmp_path, *TOY, "logger=tensorboard"))
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("train/d_loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("train/g_loss")] == [1, 2, 3, 4]
    images = events.Images("samples")
    assert [i.step for i in images] == [2, 4]
    logged = np.asarray(Image.open(BytesIO(images[-1].encoded_image_string)).convert("RGB"))
    assert np.array_equal(logged, png(tmp_path / "samples" / "iter_0000004.png"))  # the same picture
    assert OmegaConf.load(tmp_path / "tensorboard" / "hparams.yaml").model.n_critic == 5  # the run's config
    assert read_metrics(tmp_path)  # CSV stays on


def test_wandb_disabled_logs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")  # as CI sets it
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(make_cfg(tmp_path, *TOY, "logger=wandb"))
    assert not logger_warnings(record, "wandb")
    assert not (tmp_path / "wandb").exists()


def test_critic_heat_map_scatter(tmp_path):
    torch.manual_seed(0)
    real, fake = torch.randn(500, 2), torch.randn(64, 2) * 0.3  # (N, 2)
    plain = save_scatter(fake, tmp_path / "plain.png", real)
    heat = save_scatter(fake, tmp_path / "heat.png", real, critic=lambda p: p[:, 0] - p[:, 1])  # (M, 2) -> (M,)
    for image, name in ((plain, "plain.png"), (heat, "heat.png")):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert np.array_equal(image, png(tmp_path / name))  # returned array == PNG file
    assert not np.array_equal(plain, heat)
    colours = heat.reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > len(np.unique(plain.reshape(-1, 3), axis=0))  # a colour map is drawn

    line = save_scatter(torch.randn(300, 1), tmp_path / "line.png", torch.randn(300, 1), critic=lambda p: p[:, 0] ** 2)
    assert np.array_equal(line, png(tmp_path / "line.png"))


@pytest.mark.parametrize("pack", [1, 2])
def test_critic_is_evaluated_in_eval_mode_without_gradients(tmp_path, pack):
    cfg = make_cfg(tmp_path, "data=ring8", "model=gan", "net=mlp", f"model.pack={pack}")
    module = build_module(cfg, build(cfg.data, "data", seed=0))
    d = module.discriminator
    seen = []
    d.register_forward_hook(lambda m, i, o: seen.append(m.training))
    points = torch.randn(5, 2)  # (M, 2)
    values = critic_of(module)(points)  # (M,)
    assert values.shape == (5,) and not values.requires_grad
    assert seen == [False] and d.training  # eval for the plot, training mode restored
    d.eval()
    with torch.no_grad():  # a packing critic sees m copies of each point side by side
        expected = d(points.repeat_interleave(pack, 0).reshape(5, 2 * pack))["logits"]  # (M,)
    assert torch.allclose(values, expected)

@pytest.mark.slow
def test_a_continued_run_keeps_one_wandb_run_and_one_tensorboard_history(tmp_path, no_credentials):
    """Three launches of the same command: killed inside its 3rd checkpoint write (iteration 30: its rows to 30
    logged and flushed, last.ckpt still at 20), stopped by SIGTERM, then to the end. W&B (offline) gets one
    segment per launch, all of one run id; the steps of each go on after the last one's (no restart at 0, no
    step twice), with metrics.csv's values. TensorBoard appends to one folder and hides what the killed launch
    logged after its checkpoint: each logged step once, with metrics.csv's values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, crash = tmp_path / "run", Path(__file__).parent / "reliability" / "crash_train.py"
    cmd = [crash, *TOY[:2], "iterations=400", "data.batch_size=32", "net.g.hidden=16",
           "net.d.hidden=16", "logger=[wandb,tensorboard]", "trainer.log_every_n_steps=5", "metrics=none",
           "callbacks.checkpoint.every=10", "callbacks.samples.every=100", "trainer.enable_progress_bar=false",
           f"hydra.run.dir={out}"]
    # fresh processes, as a requeued job is: not the W&B service that this pytest process may have started
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "log"
    killed = launcher.popen(*cmd, env={**env, "GANLAB_TEST_KILL_IN_SAVE": "3"}, stdout=log)
    assert killed.wait(timeout=300) == -9
    stopped = launcher.popen(*cmd, env=env, stdout=log)
    deadline = time.monotonic() + 120
    while int(float((out / "csv" / "metrics.csv").read_text().splitlines()[-1].split(",")[0])) < 60:
        assert stopped.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()[-3000:]
        time.sleep(0.05)
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=120) == 128 + signal.SIGTERM
    assert launcher.popen(*cmd, env=env, stdout=log).wait(timeout=300) == 0, (tmp_path / "log").read_text()[-3000:]

    csv = {int(r["step"]): r["train/d_loss"] for r in read_metrics(out) if "train/d_loss" in r}
    assert sorted(csv) == list(range(5, 401, 5))
    segments = sorted((out / "wandb").glob("offline-run-*"))  # in start order (the name holds the time)
    assert len(segments) == 3 and len({p.name.rsplit("-", 1)[1] for p in segments}) == 1  # one run id
    last = 20  # the killed launch's last.ckpt
    for segment in segments[1:]:  # the killed launch's W&B process may not have written anything
        steps = []
        for r in wandb_records(segment):
            if r["type"] == "history":
                row = r["history"]["item"]
                steps.append(row["_step"])
                assert row["trainer/global_step"] == row["_step"]
                if "train/d_loss" in row:
                    assert row["train/d_loss"] == pytest.approx(csv[row["_step"]], rel=1e-6)
        assert steps and steps == sorted(steps) and steps[0] > last and steps[0] <= last + 10, (last, steps)
        last = steps[-1]
    assert last == 400

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/d_loss")]
    assert [s for s, _ in logged] == sorted(csv)
    for s, v in logged:
        assert v == pytest.approx(csv[s], rel=1e-6)

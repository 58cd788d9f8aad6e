"""resume.py: what the same command does in a run folder that already holds a run: a completed run is left as it
is, an unfinished one continues from its own checkpoint (also when the command names where it started), a folder
holding a run of other settings is one config error naming them, and temporary files of killed writers go."""
import json

import pytest
from omegaconf import open_dict

from ganlab.config import ConfigError
from ganlab.resume import plan
from ganlab.sweep import write_status
from ganlab.train import train

from ..conftest import make_cfg

RUN = ["data=ring8", "model=wgan_gp", "data.batch_size=32", "net.g.hidden=16", "net.d.hidden=16", "iterations=2"]


@pytest.fixture
def run(tmp_path):
    train(make_cfg(tmp_path, *RUN))  # checkpoints/last.ckpt at iteration 2
    return tmp_path


def test_an_unfinished_run_continues_from_its_own_checkpoint(run):
    last = run / "checkpoints" / "last.ckpt"
    assert plan(make_cfg(run, *RUN), run, RUN) == (str(last), True, None)
    # where the run started (ckpt_path=) is older than its own checkpoint; a new time limit or display may differ
    cfg = make_cfg(run, *RUN, "ckpt_path=/elsewhere/last.ckpt", "trainer.max_time=00:01:00:00")
    assert plan(cfg, run, RUN).ckpt == str(last)


def test_other_settings_in_the_folder_are_one_error_naming_them(run):
    with pytest.raises(ConfigError, match=r"holds a run of other settings.*model.n_critic: 5 -> 1"):
        plan(make_cfg(run, *RUN, "model.n_critic=1"), run, RUN + ["model.n_critic=1"])


def test_a_completed_run_is_left_as_it_is(run):
    write_status(run, "completed", None, {"train/d_loss": 0.5}, RUN)
    done = plan(make_cfg(run, *RUN), run, RUN)
    assert done.completed["metrics"] == {"train/d_loss": 0.5} and done.ckpt is None
    with pytest.raises(ConfigError, match="holds a completed run of other settings"):
        plan(make_cfg(run, *RUN, "seed=3"), run, RUN + ["seed=3"])
    assert json.loads((run / "status.json").read_text())["status"] == "completed"


def test_temporary_files_of_killed_writers_are_removed_and_others_kept(run):
    stale = [run / "checkpoints" / ".last.ckpt.4242-0badc0de.tmp", run / ".status.json.77-12345678.tmp"]
    kept = [run / "checkpoints" / "notes.tmp", run / ".hidden"]
    for f in stale + kept:
        f.write_text("x")
    plan(make_cfg(run, *RUN), run, RUN)
    assert not any(f.exists() for f in stale) and all(f.exists() for f in kept)


def test_a_new_folder_starts_anew_or_from_ckpt_path(tmp_path, run):
    fresh = tmp_path / "fresh"
    cfg = make_cfg(fresh, *RUN)
    assert plan(cfg, fresh, RUN) == (None, False, None)
    with open_dict(cfg):
        cfg.ckpt_path = str(run / "checkpoints" / "last.ckpt")
    assert plan(cfg, fresh, RUN) == (cfg.ckpt_path, False, None)


def test_a_refused_folder_keeps_its_status(tmp_path):
    """The same folder with other settings: one config error, and the folder's completed run stays recorded."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    args = [sys.executable, "train.py", *RUN, "metrics=none", "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path}"]
    assert subprocess.run(args, cwd=root, capture_output=True, timeout=300).returncode == 0
    before = (tmp_path / "status.json").read_text()
    again = subprocess.run(args + ["seed=5"], cwd=root, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "ganlab: config error: hydra.run.dir=" in again.stderr, again.stderr
    assert (tmp_path / "status.json").read_text() == before

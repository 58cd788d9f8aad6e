"""resume.py: what the same command does in a run folder that already holds a run: a completed run is left as it
is (by its status, or by a checkpoint at its last iteration), an unfinished one continues from its own checkpoint
(also when the command names where it started, and from wherever the folder was moved or copied to), and a folder
holding a run of other settings is one config error naming them."""
import shutil

import pytest
from omegaconf import open_dict

from ganlab.config import ConfigError
from ganlab.csv_logger import final_values, read_rows
from ganlab.resume import Plan, plan
from ganlab.run_folder import write_status
from ganlab.train import train

from ..conftest import make_cfg, read_metrics

RUN = ["data=ring8", "model=wgan_gp", "data.batch_size=32", "net.g.hidden=16", "net.d.hidden=16", "iterations=4",
       "callbacks.checkpoint.every=2", "callbacks.checkpoint.keep=true"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    train(make_cfg(out, *RUN))  # checkpoints/last.ckpt at iteration 4 of 4, iter_0000002.ckpt kept
    return out


@pytest.fixture
def run(tmp_path, finished):
    """A copy of the finished run stopped at its checkpoint of iteration 2 (as a killed launch leaves it)."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    shutil.copy(out / "checkpoints" / "iter_0000002.ckpt", out / "checkpoints" / "last.ckpt")
    return out


def test_an_unfinished_run_continues_from_its_own_checkpoint(run):
    last = run / "checkpoints" / "last.ckpt"
    assert plan(make_cfg(run, *RUN), run, RUN) == Plan(str(last), True, None, 2)
    # where the run started (ckpt_path=) is older than its own checkpoint; a new time limit or display may differ
    cfg = make_cfg(run, *RUN, "ckpt_path=/elsewhere/last.ckpt", "trainer.max_time=00:01:00:00")
    assert plan(cfg, run, RUN).ckpt == str(last)


def test_a_moved_or_copied_folder_continues_from_its_new_place(tmp_path, run):
    """Paths the config derives from the folder (out_dir, the checkpoint and sample folders) are no settings."""
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(run, moved)
    assert plan(make_cfg(moved, *RUN), moved, RUN) == Plan(str(moved / "checkpoints" / "last.ckpt"), True, None, 2)
    with pytest.raises(ConfigError, match=r"holds a run of other settings.*data.batch_size: 32 -> 16"):
        plan(make_cfg(moved, *RUN, "data.batch_size=16"), moved, RUN)
    # a path set outside the folder stays a setting
    with pytest.raises(ConfigError, match=r"callbacks.samples.dirpath: .*/moved/samples -> /somewhere/else"):
        plan(make_cfg(moved, *RUN, "callbacks.samples.dirpath=/somewhere/else"), moved, RUN)


def test_other_settings_in_the_folder_are_one_error_naming_them(run):
    with pytest.raises(ConfigError, match=r"holds a run of other settings.*model.n_critic: 5 -> 1"):
        plan(make_cfg(run, *RUN, "model.n_critic=1"), run, RUN + ["model.n_critic=1"])


def test_a_completed_run_is_left_as_it_is(run):
    write_status(run, "completed", None, {"train/d_loss": 0.5}, RUN)
    done = plan(make_cfg(run, *RUN), run, RUN)
    assert done.completed["metrics"] == {"train/d_loss": 0.5} and done.ckpt is None
    with pytest.raises(ConfigError, match="holds a completed run of other settings"):
        plan(make_cfg(run, *RUN, "seed=3"), run, RUN + ["seed=3"])


def test_a_checkpoint_at_the_last_iteration_is_a_completed_run_without_its_status(tmp_path, finished):
    """Killed between its final checkpoint and status.json: complete, with the final values its rows hold; never
    an iteration past `iterations` (train() refuses a checkpoint that leaves nothing to train)."""
    assert not (finished / "status.json").exists()  # train() writes none: only train.main does
    done = plan(make_cfg(finished, *RUN), finished, RUN)
    assert done.continued and done.start == 4 and done.completed["status"] == "completed"
    assert done.completed["metrics"] == final_values(read_rows(finished / "csv" / "metrics.csv"))
    assert done.completed["metrics"]["train/d_loss"] == read_metrics(finished)[-1]["train/d_loss"]
    with pytest.raises(ConfigError, match=r"ckpt_path=.* is at iteration 4, and iterations=4: nothing is left to "
                                          r"train; raise iterations"):
        train(make_cfg(tmp_path / "new", *RUN, f"ckpt_path={finished / 'checkpoints' / 'last.ckpt'}"))


def test_a_new_folder_starts_anew_or_from_ckpt_path(tmp_path, run):
    fresh = tmp_path / "fresh"
    cfg = make_cfg(fresh, *RUN)
    assert plan(cfg, fresh, RUN) == (None, False, None, 0)
    with open_dict(cfg):
        cfg.ckpt_path = str(run / "checkpoints" / "last.ckpt")
    assert plan(cfg, fresh, RUN) == (cfg.ckpt_path, False, None, 0)

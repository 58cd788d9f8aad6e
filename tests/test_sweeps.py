"""Experiments at scale: real `python train.py -m` sweeps (Hydra's basic sweeper on the submitit launcher, Optuna's
sweeper on the basic launcher) where one job fails and the sweep still finishes, reports it and exits 1; every run's
status.json; the objective a sweeper reads; the SLURM launcher's sbatch request; runs reproducible by seed."""
import json
import os
import re
import stat
from pathlib import Path

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only
from omegaconf import OmegaConf

from ganlab.config import ConfigError
from ganlab.metrics.classifier import Classifier
from ganlab.sweep import check_objective, objective
from ganlab.train import CONF_DIR, build_trainer, train

from .conftest import make_cfg, read_metrics, train_py
from .test_loggers import wandb_records

TINY = ["data=grid25", "iterations=3", "net.g.hidden=32", "net.d.hidden=32", "data.batch_size=64",
        "trainer.enable_progress_bar=false"]


def status(run_dir: Path) -> dict:
    """status.json less the record of the launch that wrote it (pid, host, start)."""
    record = json.loads((run_dir / "status.json").read_text())
    assert set(record.pop("launch")) >= {"pid", "host", "started"}
    return record


@pytest.mark.slow
def test_a_failed_job_does_not_stop_a_submitit_sweep_and_is_reported(tmp_path):
    # Hydra's basic sweeper, each job a process of submitit's local executor; job 1 blows up at its first step
    r = train_py("-m", "hydra/launcher=submitit_local", *TINY, "metrics=none", "optim.d.lr=2e-4,1e30",
                 f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 1, r.stderr  # so scripts notice
    assert any((tmp_path / ".submitit").iterdir())  # submitit ran the jobs
    for num, lr in enumerate((2e-4, 1e30)):  # each job in its numbered folder with its config
        assert OmegaConf.load(tmp_path / str(num) / ".hydra" / "config.yaml").optim.d.lr == lr
    ok, bad = status(tmp_path / "0"), status(tmp_path / "1")
    assert ok["status"] == "completed" and ok["error"] is None and "optim.d.lr=0.0002" in ok["overrides"]
    assert set(ok["metrics"]) >= {"train/d_loss", "train/g_loss"}
    assert bad["status"] == "diverged" and bad["error"].startswith("iteration 1 ") and bad["metrics"] == {}
    assert "Diverged" in (tmp_path / "1" / "error.txt").read_text()  # the traceback
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert [(j["num"], j["status"]) for j in report["jobs"]] == [(0, "completed"), (1, "diverged")]
    assert report["jobs"][1]["overrides"] == bad["overrides"] and report["failed"] == 1
    summary = [line for line in r.stderr.splitlines() if line.startswith("ganlab:")]
    assert summary == [f"ganlab: job 1 (optim.d.lr=1e+30) diverged: {bad['error']}",
                       f"ganlab: sweep: 1 of 2 jobs did not complete; see {tmp_path / 'sweep.json'}"], r.stderr


@pytest.mark.slow
def test_optuna_sweep_returns_the_metric_and_a_failed_trial_is_a_failed_trial(tmp_path, no_credentials):
    # trial 0 fails after its W&B run started (trainer.num_nodes=0 is refused when the Trainer is built), trial 1
    # trains: the study goes on and its best is trial 1; each trial has its own W&B run, finished
    r = train_py("-m", "hparams_search=toy_w1", "hydra.sweeper.n_trials=2", *TINY, "metrics.every=2",
                 "metrics.toy_n=200", "model.n_critic=1", "trainer.num_nodes=${hydra:job.num}", "logger=wandb",
                 f"hydra.sweep.dir={tmp_path}", wandb="offline")
    assert r.returncode == 1, r.stderr
    # the plugin logs (Hydra's log, on stdout) that it told optuna trial 0 failed
    assert "Failed experiment: Return value must be float-castable. Got 'None'" in r.stdout, r.stdout
    refused, trained = status(tmp_path / "0"), status(tmp_path / "1")
    assert refused["status"] == "config_error" and refused["error"].startswith("trainer.num_nodes: ") and "got 0" in \
        refused["error"]
    assert trained["status"] == "completed" and trained["metrics"]["val/w1"] > 0
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert best.best_value == pytest.approx(trained["metrics"]["val/w1"])
    assert set(best.best_params) == {"optim.g.lr", "optim.d.lr", "regularizer.gp.weight"}  # n_critic was fixed
    trial = OmegaConf.load(tmp_path / "1" / ".hydra" / "config.yaml")
    assert trial.optim.g.lr == pytest.approx(best.best_params["optim.g.lr"]) and trial.optimized_metric == "val/w1"
    assert [j["status"] for j in json.loads((tmp_path / "sweep.json").read_text())["jobs"]] == ["config_error",
                                                                                                 "completed"]
    for num, exit_code in ((0, 1), (1, 0)):  # trial 1 did not log into trial 0's run, left open
        (run,) = (tmp_path / str(num) / "wandb").glob("offline-run-*")
        exits = [rec["exit"] for rec in wandb_records(run) if rec["type"] == "exit"]
        assert [e["exit_code"] for e in exits] == [exit_code]


@pytest.mark.slow
def test_a_ddp_sweep_on_one_machine_keeps_one_sweep_folder(tmp_path):
    # Lightning starts rank 1 of each job by re-running `train.py -m ...`: it replays the sweep in step, in the same
    # folder (the default one is named by the time, and rank 1 starts later), and reports nothing itself
    r = train_py("-m", *TINY, "metrics=none", "data.batch_size=32", "trainer.devices=2", "trainer.accelerator=cpu",
                 "seed=1,2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml", "sweep.json"]
    assert [status(sweep / n)["status"] for n in "01"] == ["completed", "completed"]
    assert [line for line in r.stderr.splitlines() if line.startswith("ganlab:")] == [
        f"ganlab: sweep: all 2 jobs completed; see {Path('multirun') / sweep.relative_to(tmp_path / 'multirun')}"
        f"/sweep.json"]


@pytest.mark.slow
def test_a_single_run_writes_its_status_and_keeps_its_one_line_error(tmp_path):
    r = train_py(*TINY, "optimized_metric=val/fid", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.startswith("ganlab:")]
    assert lines == ["ganlab: config error: optimized_metric=val/fid is an image metric, but data=Grid is toy data: "
                     "use optimized_metric=val/w1"] and "Traceback" not in r.stderr, r.stderr
    assert status(tmp_path) == {"status": "config_error", "error": lines[0].removeprefix("ganlab: config error: "),
                                "metrics": {}, "overrides": [*TINY, "optimized_metric=val/fid"]}


@pytest.mark.slow
def test_a_failed_evaluation_of_the_objective_fails_its_job_and_of_another_metric_warns(tmp_path, idx_root,
                                                                                          monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "stats").write_text("a file where the real statistics' folder goes")  # every FID evaluation fails
    monkeypatch.setenv("GANLAB_CACHE", str(cache))
    Classifier(channels=1, size=32, width=4).save(tmp_path / "clf.pt")
    sweep = tmp_path / "sweep"
    r = train_py("-m", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16", "iterations=2",
                 "metrics.every=1", "metrics.n=32", "metrics.features=classifier",
                 f"metrics.classifier={tmp_path / 'clf.pt'}", "optimized_metric=val/fid,null", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 1, r.stderr
    scored, unscored = status(sweep / "0"), status(sweep / "1")
    assert scored["status"] == "failed" and scored["error"].startswith(
        "RuntimeError: metrics: the evaluation at iteration 1 failed (FileExistsError") and scored["error"].endswith(
        "and optimized_metric=val/fid is one of its metrics"), scored
    assert "FileExistsError" in (sweep / "0" / "error.txt").read_text()  # the cause, in the traceback
    assert unscored["status"] == "completed" and "val/fid" not in unscored["metrics"]
    warned = re.findall(r"iteration (\d) failed \(FileExistsError.*; training goes on without it", r.stderr)
    assert warned == ["1", "2"], r.stderr  # job 1's two evaluations, a warning each; job 0 stopped at its first


@pytest.mark.parametrize("overrides, message", [
    (["data=grid25", "optimized_metric=w1"],
     r"^optimized_metric='w1' is not a metric name: .* optimized_metric=val/w1"),
    (["data=grid25", "optimized_metric=val/w1", "metrics=none"],
     r"^optimized_metric=val/w1 is a sample-quality metric, but metrics=none computes none: remove metrics=none"),
    (["data=fashion_mnist", "metrics=default", "optimized_metric=val/w1"],
     r"^optimized_metric=val/w1 is a toy-data metric, but data=IdxImages holds images: use optimized_metric=val/fid"),
    (["data=gauss1d", "metrics=default", "optimized_metric=val/modes"],
     r"^optimized_metric=val/modes counts the modes of a mixture"),
    (["data=grid25", "optimized_metric=train/typo"],
     r"^optimized_metric=train/typo: a run of this config never logs it: pick one it logs \(train/d_loss, "
     r"train/g_loss\)"),
    (["data=grid25", "optimized_metric=train/gp"], r"^optimized_metric=train/gp: a run of this config never logs it"),
    (["data=grid25", "model=wgan", "optimized_metric=train/clip"],  # clipping adds no penalty to log
     r"^optimized_metric=train/clip: .* \(train/d_loss, train/g_loss, train/wasserstein\)"),
    (["data=grid25", "optimized_metric=val/accuracy"], r"^optimized_metric=val/accuracy: a run of this config never"),
])
def test_an_objective_no_run_of_the_config_can_log_is_refused(tmp_path, overrides, message):
    cfg = make_cfg(tmp_path, *overrides)
    with pytest.raises(ConfigError, match=message):
        check_objective(cfg)


def test_the_sweepers_direction_must_improve_the_objective(tmp_path):
    recall = make_cfg(tmp_path, "data=fashion_mnist", "metrics=default", "optimized_metric=val/recall")
    with pytest.raises(ConfigError, match=r"^optimized_metric=val/recall is better higher, but "
                                          r"hydra.sweeper.direction=minimize: set hydra.sweeper.direction=maximize$"):
        check_objective(recall, "minimize")
    check_objective(recall, "maximize")
    w1 = make_cfg(tmp_path, "data=grid25", "metrics=default", "optimized_metric=val/w1")
    with pytest.raises(ConfigError, match=r"^optimized_metric=val/w1 is better lower, .* set "
                                          r"hydra.sweeper.direction=minimize$"):
        check_objective(w1, "maximize")
    check_objective(w1, "minimize")
    check_objective(make_cfg(tmp_path, "data=grid25", "optimized_metric=train/d_loss"), "maximize")  # a loss: either


def test_the_objective_is_the_final_value_and_a_missing_one_names_what_was_logged(tmp_path):
    cfg = make_cfg(tmp_path, "data=grid25", "model=wgan_gp", "optimized_metric=train/gp")
    check_objective(cfg)  # the gradient penalty is logged: refused only if a run still lacks it at its end
    assert objective(make_cfg(tmp_path), {"train/d_loss": 1.0}) is None  # no optimized_metric: nothing to return
    with pytest.raises(ConfigError, match=r"^optimized_metric=train/gp: the run never logged it \(it logged "
                                          r"train/d_loss, train/g_loss\)"):
        objective(cfg, {"train/g_loss": 0.5, "train/d_loss": 1.0})
    assert objective(make_cfg(tmp_path, "data=grid25", "optimized_metric=val/w1"), {"val/w1": 0.25}) == 0.25


@pytest.mark.parametrize("search, data", [("toy_w1", "Grid"), ("image_fid", "IdxImages")])
def test_every_search_optimizes_a_metric_its_runs_log_over_keys_that_exist(tmp_path, search, data):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={search}", f"hydra.sweep.dir={tmp_path}"],
                      return_hydra_config=True)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.data._target_.endswith(data)
    check_objective(cfg)
    for key in cfg.hydra.sweeper.params:  # a misspelt key would fail every trial
        assert OmegaConf.select(cfg, key) is not None, key


def test_slurm_launcher_asks_one_task_per_device_on_every_node(tmp_path, monkeypatch):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer.devices=4",
                                          "trainer.num_nodes=2", f"hydra.sweep.dir={tmp_path}"],
                      return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)  # as Hydra builds it for `-m hydra/launcher=slurm`
    assert type(launcher).__name__ == "SlurmLauncher"
    # the sbatch file submitit writes from these parameters (named as the plugin's launch() names them); submitit
    # wants an srun on PATH before it writes one, so a stand-in that is never run
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(cluster="slurm", folder=launcher.params["submitit_folder"])
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in launcher.params.items()
                                  if k not in ("submitit_folder", "max_num_timeout")})
    sbatch = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "x")
    assert launcher.params["max_num_timeout"] == 10  # submitit requeues a job at its time limit (then resumed)
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --time=240", "#SBATCH --signal=USR2@120"):
        assert line in sbatch.splitlines(), sbatch
    # in such a job, SLURM task 6 (node 1, local task 2): Lightning takes its rank and the world from SLURM
    for var, value in {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_JOB_NAME": "train",
                       "SLURM_NODELIST": "gpu[01-02]", "SLURM_PROCID": "6", "SLURM_LOCALID": "2", "SLURM_NODEID": "1",
                       "SLURM_JOB_ID": "42"}.items():
        monkeypatch.setenv(var, value)
    for flag in (rank_zero_only, utils_rank_zero_only):  # the Trainer sets the process's rank: put it back after
        monkeypatch.setattr(flag, "rank", flag.rank)
    trainer = build_trainer(cfg, accelerator="cpu", default_root_dir=str(tmp_path))  # as train() builds it
    assert isinstance(trainer._accelerator_connector.cluster_environment, SLURMEnvironment)
    assert (trainer.global_rank, trainer.local_rank, trainer.node_rank, trainer.world_size) == (6, 2, 1, 8)


def test_the_seed_makes_a_cpu_run_reproducible(tmp_path):
    def losses(name: str, seed: int) -> list[tuple[float, float]]:
        train(make_cfg(tmp_path / name, *TINY, "iterations=5", f"seed={seed}"))
        return [(row["train/d_loss"], row["train/g_loss"]) for row in read_metrics(tmp_path / name)]

    first = losses("a", 1)
    assert len(first) == 5
    assert losses("b", 1) == first  # every row identical
    other = losses("c", 2)
    assert all(x != y for x, y in zip(other, first))

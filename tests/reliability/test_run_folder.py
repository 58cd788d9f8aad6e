"""A run folder stays true (run_folder.py, resume.py, csv_logger.py, checkpoint_io.py): one launch at a time,
whose lock a killed launch never keeps; a refused launch changes no file; status.json says `running` while a
launch runs, and every ending writes one; metrics.csv is rebuilt from the checkpoint when it is lost or damaged;
the leftovers of killed writers go, and only they; a write the system refuses is one line naming the file."""
import errno
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.checkpoint_io import WriteError, cannot_write, save_torch, write_atomically
from ganlab.config import ConfigError
from ganlab.run_folder import FolderInUse, claim, in_use, remove_leftovers
from ganlab.train import train

from .. import launcher
from ..conftest import make_cfg, read_metrics

ROOT = Path(__file__).resolve().parents[2]
# A toy run that goes on until stopped: a checkpoint every 20 iterations, a row every 5
LONG = ["data=grid25", "model=gan", "net.g.hidden=16", "net.d.hidden=16", "iterations=1000000", "metrics=none",
        "trainer.log_every_n_steps=5", "trainer.enable_progress_bar=false", "callbacks.checkpoint.every=20",
        "callbacks.samples.every=1000000"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def launch(out: Path, *args: str, **kwargs) -> launcher.Launched:
    """`python train.py ARGS hydra.run.dir=OUT`, its output appended to OUT.log."""
    return launcher.popen("train.py", *args, f"hydra.run.dir={out}", env=ENV, stdout=f"{out}.log", **kwargs)


def log(out: Path) -> str:
    return Path(f"{out}.log").read_text()


def status(out: Path) -> dict:
    return json.loads((out / "status.json").read_text())


def wait_until(ready, proc: launcher.Launched, out: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, log(out)[-3000:]
        assert time.monotonic() < deadline, log(out)[-3000:]
        time.sleep(0.02)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: its bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def ganlab_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ganlab:")]


# --- one writer ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_launch_is_refused_before_writing_and_a_killed_launch_never_blocks(tmp_path):
    out = tmp_path / "run"
    first = launch(out, *LONG)
    try:
        wait_until(lambda: (out / "checkpoints" / "last.ckpt").is_file(), first, out)
        running = status(out)
        assert running["status"] == "running" and running["launch"]["pid"] == first.pid
        assert running["launch"]["host"] == socket.gethostname() and running["launch"]["from_iteration"] == 0
        record = {p: (out / p).read_bytes() for p in (".hydra/config.yaml", ".hydra/hydra.yaml",
                                                      ".hydra/overrides.yaml", "status.json", ".lock")}
        second = launcher.run("train.py", *LONG, f"hydra.run.dir={out}", env=ENV, timeout=120)
        assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
        assert ganlab_lines(second.stderr) == [
            f"ganlab: hydra.run.dir={out} is in use by another launch (pid {first.pid} on host "
            f"{socket.gethostname()}, started {running['launch']['started']}): wait for it to end, or stop it (its "
            f"status.json says how far it got); a second launch into the same folder would write the same files"]
        assert {p: (out / p).read_bytes() for p in record} == record
        assert first.poll() is None  # the first launch goes on
    finally:
        first.kill()
        first.wait()
    assert status(out)["status"] == "running"  # SIGKILL: nothing could write the ending
    ckpt = out / "checkpoints" / "last.ckpt"
    at = torch.load(ckpt, weights_only=True)["ganlab_steps"]["g_steps"]
    third = launcher.run("train.py", *LONG, "trainer.max_time=00:00:00:01", f"hydra.run.dir={out}", env=ENV,
                         timeout=120)
    assert third.returncode == 0, third.stderr[-3000:]
    assert (f"ganlab: the launch of {running['launch']['started']} (pid {first.pid} on host {socket.gethostname()}) "
            f"was killed while it ran; its last checkpoint: {ckpt} (iteration {at})") in third.stderr
    assert status(out)["status"] == "stopped" and status(out)["launch"]["pid"] != first.pid


def test_the_lock_is_one_per_folder_and_given_back_at_the_end(tmp_path):
    """In one process as across processes (multirun jobs run one after another in the launching process)."""
    with claim(tmp_path) as held:
        held.accept({"config.yaml": "a: 1\n"}, [], 0)
        assert in_use(tmp_path)
        with pytest.raises(FolderInUse, match=rf"is in use by another launch \(pid {os.getpid()} on host "):
            with claim(tmp_path):
                pass
    assert not in_use(tmp_path)
    with claim(tmp_path):  # the next job gets it
        pass
    fresh = tmp_path / "fresh"
    with claim(fresh):  # a launch refused after claiming leaves no lock file where there was none
        assert (fresh / ".lock").is_file()
    assert list(fresh.iterdir()) == []


# --- a refused launch ---------------------------------------------------------------------------------------

TOY = ["data=grid25", "model=gan", "net.g.hidden=16", "net.d.hidden=16", "iterations=4", "metrics=none",
       "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def completed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("completed") / "run"
    done = launcher.run("train.py", *TOY, f"hydra.run.dir={out}", env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_a_refused_launch_changes_no_file(tmp_path, completed):
    """Other settings in a completed folder (by status.json) and in one whose status is gone (by its checkpoint):
    one config error each, and every file as it was, Hydra's record and a killed writer's leftover included."""
    out = tmp_path / "copy"
    shutil.copytree(completed, out)
    (out / "checkpoints" / ".last.ckpt.4194303-0badc0de.tmp").write_text("a killed writer's")
    for missing_status in (False, True):
        if missing_status:
            (out / "status.json").unlink()
        before = snapshot(out)
        refused = launcher.run("train.py", *TOY, "model=lsgan", f"hydra.run.dir={out}", env=ENV, timeout=120)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert ganlab_lines(refused.stderr)[0].startswith(f"ganlab: config error: hydra.run.dir={out} holds a "), \
            refused.stderr
        assert snapshot(out) == before


@pytest.mark.slow
def test_a_run_whose_checkpoint_is_at_its_end_is_complete_without_its_status(tmp_path, completed):
    out = tmp_path / "copy"
    shutil.copytree(completed, out)
    recorded = status(completed)
    (out / "status.json").unlink()  # killed between the final checkpoint and its status
    rows, ckpt = (out / "csv" / "metrics.csv").read_bytes(), (out / "checkpoints" / "last.ckpt").read_bytes()
    again = launcher.run("train.py", *TOY, f"hydra.run.dir={out}", env=ENV, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"ganlab: {out} holds this run, completed (checkpoints/last.ckpt at iteration 4 of 4): nothing to " \
           f"train" in again.stderr
    assert (out / "csv" / "metrics.csv").read_bytes() == rows and (out / "checkpoints" / "last.ckpt").read_bytes() \
        == ckpt  # no iteration 5
    assert status(out)["status"] == "completed" and status(out)["metrics"] == recorded["metrics"]


# --- an honest status ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_ctrl_c_still_writes_a_status(tmp_path):
    """The first Ctrl-C asks for a checkpoint at the iteration end, then the final samples; the second, sent
    while those are drawn, stops at once (Lightning exits): the status says so."""
    out = tmp_path / "run"
    # 200,000 points in the final scatter plot: seconds of drawing, so the second Ctrl-C lands while they are drawn.
    # SIGINT at its default, as from a terminal: a command a script started in the background (`make test &`)
    # inherits SIGINT ignored, Python leaves it so, and the second Ctrl-C would be ignored as the process was told
    proc = launch(out, *LONG, "callbacks.samples.every=100", "callbacks.samples.n=200000",
                  sigint_from_a_terminal=True)
    wait_until(lambda: status(out)["status"] == "running" if (out / "status.json").is_file() else False, proc, out)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    wait_until(lambda: "ganlab: interrupted by SIGINT at iteration" in log(out), proc, out)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) != 0
    ended = status(out)
    if not (ended["status"] == "interrupted" and ended["error"].startswith("stopped by a second Ctrl-C (SIGINT)")):
        pytest.fail(f"status {ended['status']}: {ended['error']}\n--- the run's output:\n{log(out)[-6000:]}")


# --- metrics.csv --------------------------------------------------------------------------------------------

ROWS = ["data=grid25", "model=gan", "net.g.hidden=16", "net.d.hidden=16", "metrics=default", "metrics.every=5",
        "metrics.toy_n=200", "callbacks.checkpoint.every=5"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    train(make_cfg(out, *ROWS, "iterations=20"))
    return out


def damage(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    elif how == "cut_mid_row":
        text = path.read_bytes()
        path.write_bytes(text[:len(text) // 2 + 3])
    elif how == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(3000))


@pytest.mark.parametrize("how", ["deleted", "cut_mid_row", "random_bytes"])
def test_metrics_csv_lost_or_damaged_is_rebuilt_from_the_checkpoint(tmp_path, uninterrupted, how, capsys):
    out = tmp_path / "run"
    train(make_cfg(out, *ROWS, "iterations=10"))  # its last checkpoint, at 10, after an evaluation
    csv = out / "csv" / "metrics.csv"
    damaged = csv.read_bytes() if how != "deleted" else None
    damage(csv, how)
    if how != "deleted":
        damaged = csv.read_bytes()
    train(make_cfg(out, *ROWS, "iterations=20", f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}"))
    assert read_metrics(out) == read_metrics(uninterrupted)  # every row, the evaluations at 5 included
    said = capsys.readouterr().err
    assert f"ganlab: {csv} " in said and "rebuilt from the checkpoint's copy (" in said
    assert "rows, up to iteration 10)" in said
    if damaged is not None:  # what the run wrote is kept
        assert (out / "csv" / "metrics.damaged.csv").read_bytes() == damaged


def test_an_unreadable_metrics_csv_without_a_copy_is_one_line_naming_it(tmp_path):
    """A checkpoint written before it kept the rows (its `metrics_csv` removed here) cannot rebuild the file."""
    out = tmp_path / "run"
    train(make_cfg(out, *ROWS, "iterations=5"))
    ckpt = out / "checkpoints" / "last.ckpt"
    old = torch.load(ckpt, weights_only=True)
    del old["metrics_csv"]
    torch.save(old, ckpt)
    damage(out / "csv" / "metrics.csv", "random_bytes")
    with pytest.raises(ConfigError, match=rf"^{out / 'csv' / 'metrics.csv'} cannot be read \(not UTF-8 text\), and "
                                          r"the checkpoint this run goes on from holds no copy of its rows: move"):
        train(make_cfg(out, *ROWS, "iterations=10", f"ckpt_path={ckpt}"))


# --- debris -------------------------------------------------------------------------------------------------

def test_leftovers_of_killed_writers_go_everywhere_in_the_folder_and_nothing_else(tmp_path):
    dead = 4194303  # above the kernel's default pid_max: no process has it
    stale = [tmp_path / "checkpoints" / f".last.ckpt.{dead}-0badc0de.tmp",
             tmp_path / f".status.json.{dead}-12345678.tmp", tmp_path / "csv" / f".metrics.csv.{dead}-00c0ffee.tmp",
             tmp_path / "wandb" / f".run_id.{dead}-aaaaaaaa.tmp",
             tmp_path / "samples" / "deep" / f".iter_0000010.png.{dead}-bbbbbbbb.tmp"]
    kept = [tmp_path / "checkpoints" / "notes.tmp", tmp_path / ".hidden", tmp_path / "csv" / ".metrics.csv.tmp",
            tmp_path / "checkpoints" / f".last.ckpt.{os.getppid()}-0badc0de.tmp"]  # a live writer's (pytest's parent)
    for f in stale + kept:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    remove_leftovers(tmp_path)
    assert not [f for f in stale if f.exists()] and all(f.exists() for f in kept)


# --- errors that name the file ------------------------------------------------------------------------------

@pytest.mark.parametrize("code, cause", [
    ("ENOSPC", "no space left on the device"), ("EDQUOT", "the disk quota is exceeded"),
    ("EFBIG", "the file is too large"), ("EACCES", "permission denied"), ("EPERM", "operation not permitted"),
    ("EROFS", "the file system is read-only")])
def test_refused_writes_are_one_line_with_the_file_the_cause_and_the_fix(code, cause):
    number = getattr(errno, code)
    e = cannot_write("/runs/r/checkpoints/last.ckpt",
                     OSError(number, os.strerror(number), "/runs/r/checkpoints/.last.ckpt.1-00000000.tmp"))
    assert isinstance(e, WriteError) and "\n" not in str(e)
    assert str(e).startswith(f"cannot write /runs/r/checkpoints/last.ckpt: {cause}") and f"({code}): " in str(e)
    assert "hydra.run.dir" in str(e) and ".tmp" not in str(e)
    other = OSError(errno.EIO, "I/O error")
    assert cannot_write("/x", other) is other  # not the user's to fix: a bug's traceback


def test_a_checkpoint_past_the_file_size_limit_names_the_checkpoint(tmp_path):
    """torch.save hides the OSError in a RuntimeError that names no file: save_torch brings it back out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    try:
        with pytest.raises(WriteError, match=rf"^cannot write {tmp_path / 'last.ckpt'}: the file is too large .*"
                                             r"\(EFBIG\): raise the limit"):
            write_atomically(tmp_path / "last.ckpt", lambda tmp: save_torch({"w": torch.zeros(100_000)}, tmp))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(tmp_path.iterdir()) == []  # no temporary file left


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_last_ckpt(tmp_path):
    out = tmp_path / "run"
    command = ["train.py", *LONG, "trainer.max_time=00:00:00:01", f"hydra.run.dir={out}"]
    first = launcher.run(*command, env=ENV, timeout=120)
    assert first.returncode == 0 and status(out)["status"] == "stopped", first.stderr[-3000:]
    ckpt = out / "checkpoints" / "last.ckpt"
    good = ckpt.read_bytes()
    limit = len(good) // 2  # the checkpoint no longer fits; the rows and the status do

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = subprocess.run([sys.executable, *command], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
                          preexec_fn=small_files)  # a limit set before exec: a real process
    line = (f"ganlab: cannot write {ckpt}: the file is too large for the file system or the process's file-size "
            f"limit (EFBIG): raise the limit (ulimit -f unlimited) or use another hydra.run.dir")
    assert full.returncode == 1 and "Traceback" not in full.stderr and ganlab_lines(full.stderr)[-1] == line, \
        full.stderr[-3000:]
    assert status(out)["status"] == "failed" and status(out)["error"] == line.removeprefix("ganlab: ")
    assert ckpt.read_bytes() == good and not list(out.rglob("*.tmp"))


def without_root_override() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the capability bounding set
    (prctl PR_CAPBSET_DROP), so that permission bits bind root as they bind anyone."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.slow
def test_an_unwritable_checkpoint_folder_is_one_line_before_training(tmp_path):
    """checkpoints/ without write permission (as root, whose permission override the launch gives up)."""
    out = tmp_path / "run"
    folder = out / "checkpoints"
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        done = subprocess.run([sys.executable, "train.py", *LONG, f"hydra.run.dir={out}"], cwd=ROOT, env=ENV,
                              capture_output=True, text=True, timeout=120,
                              preexec_fn=without_root_override if os.geteuid() == 0 else None)
    finally:
        folder.chmod(0o755)
    line = (f"ganlab: cannot write {folder}/(a new file): permission denied (EACCES): make {folder} writable "
            f"(chmod u+w {folder}) or use another hydra.run.dir")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert ganlab_lines(done.stderr) == [line], done.stderr[-3000:]
    assert status(out)["status"] == "failed" and status(out)["error"] == line.removeprefix("ganlab: ")
    assert not (out / "csv" / "metrics.csv").exists()  # nothing trained


@pytest.mark.slow
def test_a_stopped_run_says_the_command_that_continues_it_in_its_dated_folder(tmp_path):
    """Without hydra.run.dir the folder's name holds the launch's time: the same command would start a new run,
    so the time limit's line names the folder, and that command continues the run there."""
    args = ["data=grid25", "model=gan", "net.g.hidden=16", "net.d.hidden=16", "iterations=1000000", "metrics=none",
            "trainer.enable_progress_bar=false", "trainer.max_time={seconds:3}"]
    train_py = [sys.executable, str(ROOT / "train.py")]
    first = launcher.run(ROOT / "train.py", *args, cwd=tmp_path, env=ENV, timeout=300)  # the printed command: bash
    assert first.returncode == 0, first.stderr
    (run,) = (p.parent for p in (tmp_path / "outputs").glob("*/*/status.json"))
    again = f"python train.py {' '.join(args[:-1])} 'trainer.max_time={{seconds:3}}' hydra.run.dir={run}"
    (line,) = [x for x in first.stderr.splitlines() if x.startswith("ganlab: stopped by the time limit")]
    assert line.endswith(f"; `{again}` continues it") and status(run)["error"].endswith(f"; `{again}` continues it")
    command = " ".join(shlex.quote(a) for a in train_py) + again.removeprefix("python train.py")
    second = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert f"ganlab: continuing the run in {run}" in second.stderr, second.stderr
    assert len(list((tmp_path / "outputs").glob("*/*/status.json"))) == 1  # no second folder


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_a_signal_to_every_process_stops_a_run_whose_images_stream_from_disk(tmp_path, signum):
    """A terminal's Ctrl-C reaches the whole process group, and SLURM's preemption and scancel send SIGTERM to every
    process of the job step: the DataLoader's workers too. They leave it to the training process, which stops at the
    iteration end with its checkpoint and ends them (a worker that died of it failed the run, even mid-checkpoint:
    "DataLoader worker ... exited unexpectedly" / "is killed by signal: Terminated")."""
    images = tmp_path / "images"
    images.mkdir()
    for i, x in enumerate(np.random.default_rng(0).integers(0, 256, (400, 28, 28), dtype=np.uint8)):
        Image.fromarray(x).save(images / f"{i:03d}.png")
    from ganlab.data.folder import ImageFolder
    from ganlab.data.stream import leave_stops_to_the_trainer

    # the workers are built to leave them (whether a worker dies of one without it depends on where it was)
    assert ImageFolder(str(images), size=28, channels=1).loader().worker_init_fn is leave_stops_to_the_trainer
    out = tmp_path / "run"
    proc = launcher.popen("train.py", "data=folder", f"data.path={images}", "data.size=28", "data.num_workers=4",
                          "data.batch_size=64", "net.g.ch=8", "net.d.ch=8", "iterations=1000000", "metrics=none",
                          "trainer.enable_progress_bar=false", f"hydra.run.dir={out}", env=ENV, start_new_session=True,
                          stdout=os.devnull, stderr=tmp_path / "log.txt")
    wait_until(lambda: (out / "csv" / "metrics.csv").is_file() and len(read_metrics(out)) >= 2, proc, out)
    os.killpg(proc.pid, signum)  # as the terminal or SLURM sends it
    assert proc.wait(timeout=120) == 128 + signum, (tmp_path / "log.txt").read_text()[-3000:]
    assert status(out)["status"] == "interrupted", status(out)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    time.sleep(1)
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the run's group still alive: {left}"  # the workers ended too


def _worker_that_sleeps(grace: float, ready) -> None:
    from ganlab.data import stream
    stream.TERM_GRACE = grace
    stream.leave_stops_to_the_trainer(0)
    ready.set()
    for _ in range(600):  # in slices, as a DataLoader worker polls its queue (every 5 s): a signal that lands just
        time.sleep(0.1)   # before a sleep begins runs its handler when that sleep ends (once in ~150 here with one)


def test_a_worker_outlives_sigterm_for_its_grace_and_no_longer():
    """Deferred, not ignored: multiprocessing joins daemon workers at exit after SIGTERM, so one that ignored it for
    good would hang its parent there."""
    import multiprocessing as mp
    fork = mp.get_context("fork")
    ready = fork.Event()
    worker = fork.Process(target=_worker_that_sleeps, args=(1.5, ready), daemon=True)
    worker.start()
    assert ready.wait(timeout=30)  # its handlers are set
    os.kill(worker.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert worker.is_alive()  # within the grace
    worker.join(timeout=10)
    assert worker.exitcode == 128 + signal.SIGTERM  # after it, as if killed by the signal

"""`python SCRIPT ARGS` for the tests, forked from a warm interpreter instead of started cold.

A cold `python train.py` spends 8-10 s of a 2-core CPU importing Lightning (which imports torchmetrics,
torchvision and torch._dynamo) before it reads its first override, and the suite launches it dozens of times.
Here one server process per test worker imports ganlab's entry points once (multiprocessing's forkserver,
single-threaded, no tensor ever computed in it, so forking it is safe), and each launch is a fork of it that
runs SCRIPT as `__main__` with ARGS as sys.argv, in CWD with exactly ENV, its output in the files given. The
child is a real process with its own pid: it can be signalled, killed mid-write, or lead its own session, and it
exits with the status `python SCRIPT ARGS` would give: SystemExit's code, 1 and a traceback for an uncaught
exception, killed by SIGINT for an uncaught KeyboardInterrupt, -N when a signal N kills it (test_launcher.py
compares the two on a small script). What it skips is the interpreter's start and the imports: the tests that
need those, or a limit set before exec, keep a real `python train.py` (the printed command that continues a
stopped run, run by bash; a file-size limit; dropped capabilities).

Environment variables read at import time take the server's value: it starts with OMP_NUM_THREADS=1, as every
launch of the suite asks (one thread each, two test workers on two cores)."""
from __future__ import annotations

import atexit
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what train.py, evaluate.py, sample.py and report.py import, and what Lightning imports when it fits
_PRELOAD = ["ganlab.train", "ganlab.evaluate", "ganlab.sample", "ganlab.report", "torch._dynamo"]
_context = None


def _server():
    """The forkserver context, started on the first launch with OMP_NUM_THREADS=1 for its imports."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
        before = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            first = _context.Process(target=int)  # starting it starts the server; it returns at once
            first.start()
            first.join()
        finally:
            if before is None:
                del os.environ["OMP_NUM_THREADS"]
            else:
                os.environ["OMP_NUM_THREADS"] = before
    return _context


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _main(script: str, args: list[str], cwd: str, env: dict, out: str, err: str | None, new_session: bool,
          terminal_sigint: bool) -> None:
    """In the forked child: become `python SCRIPT ARGS` and run it."""
    if new_session:
        os.setsid()
    if terminal_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    fd = _open(out)
    os.dup2(fd, 1)
    os.dup2(_open(err) if err else fd, 2)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115  as python gives a file: block-buffered
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115  line-buffered
    # multiprocessing leaves the child on the server's start method; python's default forks a DataLoader's workers
    # from the run itself, which then ends them (else a second forkserver starts them, and they outlive the run)
    multiprocessing.set_start_method(None, force=True)
    sys.argv = [script, *args]
    sys.path[0:0] = [str(Path(script).resolve().parent)]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:  # python exits killed by SIGINT after the traceback
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    _finish()
    sys.exit(code)


def _finish() -> None:
    atexit._run_exitfuncs()  # what the interpreter runs at exit (W&B, Hydra, Lightning register there)
    sys.stdout.flush()
    sys.stderr.flush()


class Launched:
    """A launched child, as much of subprocess.Popen as the tests use."""

    def __init__(self, process):
        self._process = process
        self.pid = process.pid

    def poll(self):
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self._process.name, timeout)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def popen(script: str | Path, *args: str, cwd: str | Path = ROOT, env: dict | None = None, stdout: str | Path,
          stderr: str | Path | None = None, start_new_session: bool = False,
          sigint_from_a_terminal: bool = False) -> Launched:
    """`python SCRIPT ARGS` started, its stdout appended to the file STDOUT and its stderr to STDERR (None: with
    stdout). Signal dispositions are the test worker's, as a subprocess inherits them: SIGINT ignored when the
    suite itself was started in the background (`make test &`), unless `sigint_from_a_terminal`, which gives the
    child Python's KeyboardInterrupt handler, as a command typed at a terminal has."""
    err = None if stderr is None else str(stderr)
    process = _server().Process(target=_main, args=(str(script), list(args), str(cwd), dict(env or os.environ),
                                                      str(stdout), err, start_new_session, sigint_from_a_terminal))
    process.start()
    return Launched(process)


def run(script: str | Path, *args: str, cwd: str | Path = ROOT, env: dict | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS` to its end, its output captured as subprocess.run(capture_output=True, text=True)."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        child = popen(script, *args, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise
        read = lambda path: path.read_text() if path.exists() else ""  # noqa: E731
        return subprocess.CompletedProcess([sys.executable, str(script), *args], code, read(out), read(err))

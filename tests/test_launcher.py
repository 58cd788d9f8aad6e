"""The suite's launcher (tests/launcher.py) gives what `python SCRIPT ARGS` gives: the same exit status, output,
argv, working folder, environment and multiprocessing start method, atexit handlers run, and a real process that
signals end. Each case runs a small script both ways and compares."""
import json
import signal
import subprocess
import sys
import time

import pytest

from . import launcher

SCRIPT = """
import atexit, json, multiprocessing, os, sys, time
atexit.register(lambda: print("atexit ran", flush=True))
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ), "name": __name__,
                  "start_method": multiprocessing.get_start_method()}))
case = sys.argv[1]
if case == "code":
    sys.exit(3)
if case == "message":
    sys.exit("ganlab: one clear line")
if case == "raise":
    raise ValueError("a bug's traceback")
if case == "interrupt":
    raise KeyboardInterrupt
if case == "wait":
    open("started", "w").close()
    time.sleep(60)
"""


def both(tmp_path, case: str):
    """The script run by `python` and by the launcher, each in a folder of its own with the same environment."""
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    env = {"LAUNCHER_PROBE": "1", "OMP_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}  # no locale: python would add one
    runs = []
    for name in ("python", "launcher"):
        cwd = tmp_path / name
        cwd.mkdir()
        if name == "python":
            done = subprocess.run([sys.executable, str(script), case], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=60)
        else:
            done = launcher.run(script, case, cwd=cwd, env=env, timeout=60)
        first, *rest = done.stdout.splitlines()
        seen = json.loads(first)
        assert seen["cwd"] == str(cwd)
        seen["cwd"] = "same"
        runs.append((done.returncode, seen, rest, done.stderr))
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("case", ["ok", "code", "message", "raise", "interrupt"])
def test_a_launch_ends_as_python_would(tmp_path, case):
    (code, seen, rest, err), (code_l, seen_l, rest_l, err_l) = both(tmp_path, case)
    assert code_l == code == {"ok": 0, "code": 3, "message": 1, "raise": 1, "interrupt": -signal.SIGINT}[case]
    assert seen_l == seen  # argv, environment, __main__, start method
    assert rest_l == rest == ["atexit ran"]
    if case == "message":
        assert err_l == err == "ganlab: one clear line\n"
    elif case in ("raise", "interrupt"):
        assert err_l.startswith("Traceback") and err_l.splitlines()[-1] == err.splitlines()[-1]
    else:
        assert err_l == err == ""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_launch_is_a_process_that_a_signal_ends(tmp_path, signum):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    child = launcher.popen(script, "wait", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"}, stdout=tmp_path / "log")
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.1)
    child.send_signal(signum)
    assert child.wait(timeout=60) == -signum

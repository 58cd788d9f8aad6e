"""`python train.py`, except that it kills itself with SIGKILL inside its GANLAB_TEST_KILL_IN_SAVE-th checkpoint
write: after the temporary file is written, before it is renamed over last.ckpt. The fault-injection test
(test_faults.py) launches this instead of train.py to hit that moment exactly; everything else is train.py's."""
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from ganlab import checkpoint_io, train  # noqa: E402

KILL_AT = int(os.environ.get("GANLAB_TEST_KILL_IN_SAVE", "0"))
saves = 0
write_atomically = checkpoint_io.write_atomically


def write_then_die(path, write, keep_old=False):
    """checkpoint_io.write_atomically, whose `write` of a checkpoint's temporary file ends the process."""
    if not str(path).endswith(".ckpt"):
        return write_atomically(path, write, keep_old)

    def write_and_count(tmp):
        global saves
        write(tmp)
        saves += 1
        if saves == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)

    return write_atomically(path, write_and_count, keep_old)


checkpoint_io.write_atomically = write_then_die

if __name__ == "__main__":
    train.main()

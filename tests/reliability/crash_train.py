"""`python train.py`, except that it kills itself with SIGKILL inside its GANLAB_TEST_KILL_IN_SAVE-th checkpoint
write: after the temporary file is written, before it is renamed over last.ckpt. The fault-injection test
(test_faults.py) launches this instead of train.py to hit that moment exactly; everything else is train.py's."""
import os
import signal
import sys
from pathlib import Path

from lightning.pytorch.plugins.io import TorchCheckpointIO

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from ganlab import train  # noqa: E402

KILL_AT = int(os.environ.get("GANLAB_TEST_KILL_IN_SAVE", "0"))
saves = 0
save = TorchCheckpointIO.save_checkpoint


def save_then_die(self, checkpoint, path, storage_options=None):
    global saves
    save(self, checkpoint, path, storage_options)
    saves += 1
    if saves == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


TorchCheckpointIO.save_checkpoint = save_then_die

if __name__ == "__main__":
    train.main()

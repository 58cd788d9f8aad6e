"""The progress display (callbacks/progress.py): the generator iteration against `iterations`, rate, ETA and the
latest losses; a tqdm bar on a terminal, a line every `every` seconds otherwise; Lightning's own bar gone."""
import io
import re
import sys
from types import SimpleNamespace

import pytest
from lightning.pytorch.callbacks import ProgressBar

from ganlab.callbacks.progress import IterationProgress, clock
from ganlab.train import build_trainer, train

from .conftest import make_cfg, train_py

LINE = re.compile(r"iteration (\d+)/(\d+) \((\d+)%\) \| ([\d.]+) it/s \| (ETA (?:\d+:)?\d+:\d\d|(?:\d+:)?\d+:\d\d elapsed)"
                  r"(?: \| (.*))?")
TOY = ["data=ring8", "net.g.hidden=16", "net.d.hidden=16", "data.batch_size=32", "trainer.accelerator=cpu"]


def lines(text: str) -> list[re.Match]:
    found = [LINE.fullmatch(line) for line in text.splitlines() if line.startswith("iteration")]
    assert all(found), text
    return found


@pytest.mark.slow
def test_lines_when_stdout_is_not_a_terminal(tmp_path):
    """`python train.py ... > log`: a line per `every` seconds (0 here: every iteration) and one at the end, with
    the iteration of the total, the rate, the ETA (the time elapsed at the end) and the latest logged losses; no
    trace of Lightning's bar (`Epoch 0/-2 ... 883/--`)."""
    done = train_py(f"hydra.run.dir={tmp_path / 'run'}", "metrics=none", *TOY, "iterations=12",
                    "trainer.log_every_n_steps=5", "callbacks.progress.every=0", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout  # written to a file
    found = lines(text)
    assert [int(m[1]) for m in found] == list(range(1, 13)) and {m[2] for m in found} == {"12"}
    assert [int(m[3]) for m in found] == [100 * i // 12 for i in range(1, 13)]
    assert all(m[5].startswith("ETA ") for m in found[:-1]) and found[-1][5].endswith(" elapsed")
    assert all(float(m[4]) > 0 for m in found)
    assert found[3][6] is None and re.fullmatch(r"d_loss [-\d.e]+ g_loss [-\d.e]+", found[4][6])  # from row 5 on
    assert "Epoch" not in text + done.stderr and "\r" not in text


def test_a_bar_on_a_terminal(tmp_path, monkeypatch):
    """tqdm's bar, drawn on stdout (a StringIO here: `bar=true` as a terminal nobody sized would need), ends at
    iterations/iterations with the rate and the latest losses."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    train(make_cfg(tmp_path, *TOY, "iterations=6", "trainer.log_every_n_steps=3", "trainer.enable_progress_bar=true",
                   "callbacks.progress.bar=true"))
    monkeypatch.undo()
    frames = out.getvalue().split("\r")
    assert re.fullmatch(r"iteration: 100%\|.*\| 6/6 \[\d\d:\d\d<00:00, +[\d.]+it/s, d_loss=[-\d.e]+, g_loss=[-\d.e]+\]\n",
                        frames[-1]), frames[-1]
    assert "Epoch" not in out.getvalue() and not LINE.search(out.getvalue())


def test_a_resumed_run_starts_at_its_checkpoint(tmp_path, capsys):
    """The lines of a run resumed at iteration 4 of 8 start at iteration 5 (its rate: the test below)."""
    common = [*TOY, "trainer.enable_progress_bar=true", "callbacks.progress.every=0"]
    train(make_cfg(tmp_path / "a", *common, "iterations=4"))
    capsys.readouterr()
    train(make_cfg(tmp_path / "b", *common, "iterations=8", f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}"))
    found = lines(capsys.readouterr().out)
    assert [int(m[1]) for m in found] == [5, 6, 7, 8] and {m[2] for m in found} == {"8"}


def test_rate_and_eta_count_only_this_process_and_every_second_between_lines():
    """A run resumed at 1000 of 2500 doing 10 iterations a second, every=30: lines at 30 s intervals, rate 10 (not
    (1000 + done) / elapsed), ETA of the 2500 - it left at that rate, the latest logged losses."""
    now = [0.0]
    bar = IterationProgress(every=30, bar=False)
    bar.clock = lambda: now[0]
    out = io.StringIO()
    module = SimpleNamespace(iteration=1000, iterations=2500, at_iteration_end=True)
    trainer = SimpleNamespace(is_global_zero=True, progress_bar_metrics={}, should_stop=False)
    bar.setup(trainer, module, "fit")
    bar.on_train_start(trainer, module)
    bar._out = out
    for i in range(1, 601):
        now[0], module.iteration = i / 10, 1000 + i
        if i == 350:
            trainer.progress_bar_metrics = {"d_loss": 0.6123, "g_loss": 1.2}
        bar.on_train_batch_end(trainer, module, None, None, i)
    module.iteration, now[0] = 1600, 61.0
    bar.on_train_end(trainer, module)
    assert out.getvalue().splitlines() == [
        "iteration 1300/2500 (52%) | 10 it/s | ETA 2:00",
        "iteration 1600/2500 (64%) | 10 it/s | ETA 1:30 | d_loss 0.612 g_loss 1.2",
        "iteration 1600/2500 (64%) | 9.84 it/s | 1:01 elapsed | d_loss 0.612 g_loss 1.2",
    ]
    assert clock(3 * 3600 + 65) == "3:01:05" and clock(59.6) == "1:00"


def test_lightnings_bar_is_replaced_and_off_means_none(tmp_path):
    """callbacks.progress is the trainer's progress bar (Lightning adds no TQDM/Rich bar of its own);
    trainer.enable_progress_bar=false drops it (Lightning would refuse the run otherwise)."""
    for on in (True, False):
        cfg = make_cfg(tmp_path, *TOY, f"trainer.enable_progress_bar={str(on).lower()}")
        callbacks = [IterationProgress(**{k: v for k, v in cfg.callbacks.progress.items() if k != "_target_"})]
        trainer = build_trainer(cfg, callbacks=callbacks, logger=False)
        bars = [c for c in trainer.callbacks if isinstance(c, ProgressBar)]
        assert bars == (callbacks if on else []) and trainer.progress_bar_callback is (callbacks[0] if on else None)


def test_every_below_zero_is_refused():
    with pytest.raises(ValueError, match="every must be >= 0 seconds, got -1"):
        IterationProgress(every=-1)

"""`make bench`'s training-step cases (ganlab.bench): the toy case on tiny iteration counts gives a full row of
finite positive numbers, and its plain PyTorch loop is the same computation as ganlab's step (same losses from the
same seed after the same iterations). No timing thresholds: speed is what the bench reports, not what tests hold."""
import math

import pytest
import torch

from ganlab.bench import main
from ganlab.bench.common import count_flops
from ganlab.bench.step import STEP_CASES, PlainLoop, bench_step, compose_cfg, run_ganlab, run_plain
from ganlab.config import build

TINY = ("net.g.hidden=32", "net.d.hidden=32", "data.batch_size=64")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets on one thread: on shared cores two threads of tiny ops mostly wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_toy_row_is_finite_and_positive_and_the_plain_loop_computes_what_ganlab_does():
    res = bench_step(STEP_CASES["toy"][0], warmup=2, iters=4, repeats=2, extra=TINY, warm=False)
    numbers = [res.ganlab_it_s, res.plain_it_s, *res.ratio, res.ganlab_img_s, res.plain_img_s, res.flops_per_iter,
               res.peak_flops, res.ganlab_mfu, res.plain_mfu]
    assert all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in numbers), numbers
    lo, med, hi = res.ratio[1], res.ratio[0], res.ratio[2]
    assert lo <= med <= hi
    assert math.isclose(res.ganlab_img_s / res.ganlab_it_s, 64)  # n_critic 1 x batch 64 real samples per iteration
    for mem in (res.ganlab_mem, res.plain_mem):  # peak RSS growth: a count of bytes where /proc can be read
        assert mem is None or (isinstance(mem, int) and mem >= 0)
    # one iteration of MLPs 2 -> 32 -> 32 -> 32 -> 1 and 64 -> 32 x3 -> 2 at batch 64: matmul FLOPs, forward
    # and backward, counted by FlopCounterMode: positive and of the right order
    assert 1e6 < res.flops_per_iter < 1e8
    # the same seed, data and draws: ganlab after 6 iterations and the plain loop after 6 are the same nets
    torch.testing.assert_close(torch.tensor(res.ganlab_losses), torch.tensor(res.plain_losses), rtol=1e-4, atol=1e-5)
    row = res.row()
    assert row.startswith("| toy |") and "nan" not in row and "inf" not in row


def test_wgan_gp_plain_loop_matches_ganlab_with_the_double_backward(tmp_path):
    """The gradient penalty written inline in the plain loop is ganlab's (toy nets, n_critic 5): same losses, and
    the FLOP count takes in the penalty's double backward."""
    cfg = compose_cfg(STEP_CASES["toy"][0], str(tmp_path), 0, None, (*TINY, "model=wgan_gp"))
    dm = build(cfg.data, "data", seed=0)
    cpu = torch.device("cpu")
    ganlab, (plain, _) = run_ganlab(cfg.copy(), dm, cpu, 1, 1), run_plain(cfg, dm, cpu, 1, 1)
    assert ganlab.seconds > 0 and plain.seconds > 0
    torch.testing.assert_close(torch.tensor(ganlab.losses), torch.tensor(plain.losses), rtol=1e-4, atol=1e-5)
    loop = PlainLoop(cfg, dm, cpu)
    with_gp = count_flops(loop.iteration)
    loop.gp = 0.0
    assert with_gp > 1.3 * count_flops(loop.iteration)  # the penalty's extra forward, backward and double backward


def test_gpu_case_without_cuda_is_one_skipped_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    main(["wgan_gp64"])
    out = capsys.readouterr().out
    assert out.count("skipped: needs a GPU") == 6 and "Traceback" not in out

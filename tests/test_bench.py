"""`make bench`'s training-step cases (ganlab.bench): the toy case on tiny iteration counts gives a full row of
finite positive numbers, and its plain PyTorch loop is the same computation as ganlab's step (same losses from the
same seed after the same iterations). No timing thresholds: speed is what the bench reports, not what tests hold."""
import math

import pytest
import torch

from ganlab.bench import main
from ganlab.bench.common import count_flops
from ganlab.bench.step import RECIPE, STEP_CASES, PlainLoop, bench_step, compose_cfg, run_ganlab, run_plain
from ganlab.config import build

from .conftest import make_cfg

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


def test_recipe_plain_loop_matches_ganlab_with_lazy_r1_and_the_ema_generator(tmp_path):
    """make train's recipe in the plain loop: R1 every 3rd critic step (weighted x 3) and the EMA copy with its
    warm-up decay give ganlab's losses and EMA weights (toy nets, n_critic 2, so R1 falls on both critic slots)."""
    extra = (*TINY, "model.n_critic=2", "regularizer=[r1]", "regularizer.r1.every=3", "model.ema_decay=0.9")
    cfg = compose_cfg(STEP_CASES["toy"][0], str(tmp_path), 0, None, extra)
    dm = build(cfg.data, "data", seed=0)
    cpu = torch.device("cpu")
    ganlab, (plain, loop) = run_ganlab(cfg.copy(), dm, cpu, 2, 2), run_plain(cfg, dm, cpu, 2, 2)
    torch.testing.assert_close(torch.tensor(ganlab.losses), torch.tensor(plain.losses), rtol=1e-4, atol=1e-5)
    ema_g, ema_p = ganlab.nets[2], plain.nets[2]
    assert loop.ema_updates == 4 and ema_g is not None
    for a, b, live in zip(ema_g.parameters(), ema_p.parameters(), plain.nets[0].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert not torch.allclose(b, live)  # an average, not a copy of G
    without = PlainLoop(cfg, dm, cpu)
    without.r1 = 0.0
    with_r1 = PlainLoop(cfg, dm, cpu)
    with_r1.k = 3  # the next critic step is due (3 % 3 == 0), the one after it is not
    one, none = count_flops(with_r1.iteration), count_flops(without.iteration)
    assert one > 1.15 * none  # R1's D forward, backward and double backward
    # the row's GFLOP/it averages over R1's period: 3 iterations hold 6 critic steps, 2 of them due
    res = bench_step(STEP_CASES["toy"][0], warmup=1, iters=2, repeats=1, extra=extra, warm=False)
    assert abs(res.flops_per_iter - (none + 2 * (one - none) / 3)) <= 1


def test_recipe_case_is_make_trains_recipe(tmp_path):
    """The `recipe` cases time what make train trains: RECIPE composes the model, loss, regularizers, optimizers and
    nets that experiment=fmnist_fast composes (a new recipe there must move the bench with it)."""
    make_train, case = make_cfg(tmp_path, "experiment=fmnist_fast"), make_cfg(tmp_path, *RECIPE)
    eager, fast = STEP_CASES["recipe"]
    assert eager.overrides == RECIPE and fast.overrides == (*RECIPE, "trainer=fast")
    for key in ("model", "loss", "regularizer", "optim", "net"):
        assert case[key] == make_train[key], key


def test_plain_loop_reuses_fakes_as_ganlab_does(tmp_path):
    """model.reuse_fakes in the plain loop: ganlab's losses (toy nets, n_critic 2: the second critic step's fakes go
    to G's step), and one G forward fewer per iteration."""
    extra = (*TINY, "model.n_critic=2", "model.reuse_fakes=true")
    cfg = compose_cfg(STEP_CASES["toy"][0], str(tmp_path), 0, None, extra)
    dm = build(cfg.data, "data", seed=0)
    cpu = torch.device("cpu")
    ganlab, (plain, loop) = run_ganlab(cfg.copy(), dm, cpu, 2, 2), run_plain(cfg, dm, cpu, 2, 2)
    torch.testing.assert_close(torch.tensor(ganlab.losses), torch.tensor(plain.losses), rtol=1e-4, atol=1e-5)
    fresh = PlainLoop(cfg, dm, cpu)
    fresh.reuse = False
    g_forward = count_flops(lambda: loop.G(torch.randn(dm.batch_size, loop.G.z_dim)))
    assert count_flops(fresh.iteration) - count_flops(loop.iteration) == g_forward


def test_gpu_case_without_cuda_is_one_skipped_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    main(["wgan_gp64"])
    out = capsys.readouterr().out
    assert out.count("skipped: needs a GPU") == 6 and "Traceback" not in out


class _CountingFeatures(torch.nn.Module):
    """A small feature network (uint8 (N, 1, 16, 16) -> (N, 16)) that counts the images it embeds."""

    name = "counting"
    num_features = 16  # for torchmetrics running it itself

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8 * 7 * 7, 16)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        return self.fc(torch.relu(self.conv(x.float() / 127.5 - 1)).flatten(1))


def _images(n=300):
    real = torch.randint(0, 256, (n, 1, 16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return real, (real.flip(-1).float() * 0.8).to(torch.uint8)  # a different set: mirrored and darker


def test_fid_case_both_sides_compute_the_same_values_and_embed_each_image_once(tmp_path):
    """The fid case's baseline is torchmetrics used well: each image through the network once (FID and KID share
    the features) and the real set once per run; ganlab's side embeds the real set once across runs (disk cache).
    Both give the FID and KID that torchmetrics gives running the network itself, twice per image."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    from ganlab.bench.fid import GanlabEval, PlainEval, check_same

    net, (real, fake), cpu = _CountingFeatures(), _images(), torch.device("cpu")

    def evaluate(side, expect_seen):
        net.seen = 0
        torch.manual_seed(0)  # KID's subsets
        out = side(real, fake)
        assert net.seen == expect_seen
        return out

    ganlab, plain = GanlabEval(net, tmp_path, subset=100), PlainEval(net, 16, subset=100, device=cpu)
    first = evaluate(ganlab, 600), evaluate(plain, 600)  # a run's first evaluation: real and generated sets
    later = evaluate(ganlab, 300), evaluate(plain, 300)  # its later ones: the generated set only
    cached = evaluate(GanlabEval(net, tmp_path, subset=100), 300), evaluate(PlainEval(net, 16, 100, cpu), 600)
    for g, p in (first, later, cached):
        check_same(g, p)
        check_same(g, first[0])
    assert first[0]["fid"] > 1 and first[0]["kid"] > 1e-3  # the two sets differ: values far from 0

    fid = FrechetInceptionDistance(feature=net)  # torchmetrics running the network in each metric
    kid = KernelInceptionDistance(feature=net, subset_size=100)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    torch.manual_seed(0)
    check_same(first[0], {"fid": float(fid.compute()), "kid": float(kid.compute()[0])})

    with pytest.raises(AssertionError, match="kid differs"):
        check_same(first[0], {**first[0], "kid": first[0]["kid"] * 1.01})


def test_fid_case_rows_are_finite_and_positive():
    from ganlab.bench.fid import EVALUATIONS, compare, report

    real, fake = _images()
    res = compare(_CountingFeatures(), real, fake, subset=100, pairs=2, device=torch.device("cpu"))
    assert res.pairs == 2 and res.n == 300 and res.dim == 16
    for e in EVALUATIONS:
        assert all(len(ts) == 2 and all(math.isfinite(t) and t > 0 for t in ts) for ts in res.times[e].values())
    assert all(t > 0 for t in res.split.values())
    rows, note = report("counting", 300, "cpu", res)  # all 300 timed: measured
    assert len(rows) == 3 and all(r.startswith("| FID+KID, counting features, N=300, cpu |") for r in rows)
    assert all("(est.)" not in r and "nan" not in r and "inf" not in r for r in rows)
    assert "KID 100 subsets of 100" in note and "2 ABBA pairs" in note
    # timed on 300, estimated at 3000: each time plus the embedding of the images it lacks, per set embedded
    per_image = res.split["embed"] / 300
    at = res.at(3000)
    for e, (k_ganlab, k_plain) in {"later": (1, 1), "first": (2, 2), "cached": (1, 2)}.items():
        for side, k in (("ganlab", k_ganlab), ("plain", k_plain)):
            assert at[e][side] == pytest.approx([t + 2700 * k * per_image for t in res.times[e][side]])
    rows, _ = report("counting", 3000, "cpu", res)
    assert all("(est.)" in r for r in rows)


@pytest.mark.slow
def test_inception_case_times_both_sides_and_checks_their_features(idx_root, monkeypatch):
    """The `inception` row: images/s of ganlab's Inception and of the file's own forward on the same images, their
    ratio, and the largest feature difference; a difference beyond 1e-5 fails the case instead of printing a row."""
    import ganlab.bench.inception as case
    from ganlab.metrics.features import inception_path

    assert inception_path().is_file(), "`make inception` puts the FID network in the cache; `make test` runs it"
    row, _, note = case.bench_inception(str(idx_root), batch=2, batches=2, pairs=2)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "inception, cpu, batch 2" and "**" in cells[2]
    ganlab, loaded = (float(v) for v in cells[1].split(" / "))
    assert ganlab > 0 and loaded > 0 and float(cells[3]) <= case.RTOL
    assert "4 Fashion-MNIST images" in note and "2 ABBA pairs" in note
    monkeypatch.setattr(case, "RTOL", 0.0)  # any rounding difference now counts as a different network
    with pytest.raises(AssertionError, match="differ from the network's as loaded"):
        case.bench_inception(str(idx_root), batch=2, batches=1, pairs=1)

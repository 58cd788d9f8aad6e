"""The step policies on their own (src/ganlab/steps/), on tiny tensors: stop/skip on non-finite steps, fp16's
loss-scale backoff (and the one private GradScaler key it relies on, pinned here), the DDP average over ranks and
rank 0's weights broadcast at the start (two gloo processes); and GANModule's checkpoint state for them, old
checkpoints included. tests/test_amp.py, tests/reliability/test_divergence.py and tests/test_ddp.py check them in
real training."""
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ganlab.divergence import Diverged
from ganlab.module import GANModule
from ganlab.steps.loss_scale import LossScaleBackoff, back_off
from ganlab.steps.nonfinite import Net, NonFiniteSteps, what_was_bad
from ganlab.steps.rank_average import average_over_ranks
from ganlab.strategy import broadcast_from_rank0

NAN = {"train/d_loss": torch.tensor(math.nan), "train/gp": torch.tensor(0.5)}


# ---- stop / skip ---------------------------------------------------------------------------------------------
def test_stop_raises_at_the_first_non_finite_step_naming_it():
    policy = NonFiniteSteps("stop", max_skips=5)
    with pytest.raises(Diverged, match=r"^iteration 3 \(7 critic steps done\): the critic step was non-finite "
                                       r"\(train/d_loss=nan\)\. Fix: ") as e:
        policy.dropped(Net.CRITIC, NAN, iteration=3, d_steps=7)
    assert (e.value.iteration, e.value.d_steps) == (3, 7)
    assert policy.skipped == 0 and policy.in_a_row == {Net.CRITIC: 0, Net.GENERATOR: 0}


def test_skip_counts_and_raises_after_max_skips_in_a_row_of_one_net():
    policy = NonFiniteSteps("skip", max_skips=3)
    policy.dropped(Net.CRITIC, NAN, 1, 1)
    policy.dropped(Net.CRITIC, NAN, 2, 2)
    policy.dropped(Net.GENERATOR, NAN, 2, 2)  # the other net's streak is its own
    assert policy.skipped == 3 and policy.in_a_row == {Net.CRITIC: 2, Net.GENERATOR: 1}
    policy.taken(Net.GENERATOR)
    assert policy.in_a_row == {Net.CRITIC: 2, Net.GENERATOR: 0}
    with pytest.raises(Diverged, match=r": 3 critic steps in a row were non-finite and skipped \(model\.max_skips; "
                                       r"the last: train/d_loss=nan\)\. Fix: "):
        policy.dropped(Net.CRITIC, NAN, 3, 3)
    assert policy.skipped == 4 and policy.in_a_row[Net.CRITIC] == 3


def test_a_taken_step_ends_the_streak():
    policy = NonFiniteSteps("skip", max_skips=2)
    for it in range(10):  # bad, good, bad, good, ...: never two in a row
        policy.dropped(Net.CRITIC, NAN, it, it)
        policy.taken(Net.CRITIC)
    assert policy.skipped == 10 and policy.in_a_row[Net.CRITIC] == 0


def test_the_message_names_the_bad_logged_values_else_the_gradients_and_ends_with_the_hint():
    assert what_was_bad({"train/g_loss": torch.tensor(math.inf), "train/x": torch.tensor(-math.nan),
                         "train/ok": torch.tensor(1.0)}) == "train/g_loss=inf, train/x=nan"
    assert what_was_bad({"train/d_loss": torch.tensor(1.0)}) == "its gradients"
    with pytest.raises(Diverged, match=r"the generator step was non-finite \(its gradients\) HINT\. Fix: "):
        NonFiniteSteps("stop").dropped(Net.GENERATOR, {"train/g_loss": torch.tensor(1.0)}, 1, 1, hint=" HINT")


@pytest.mark.parametrize("mode, max_skips, message", [
    ("ignore", 1, r"on_nonfinite must be 'stop' or 'skip', got 'ignore'"),
    ("skip", 0, r"max_skips must be >= 1, got 0"),
])
def test_bad_options_are_refused(mode, max_skips, message):
    with pytest.raises(ValueError, match=message):
        NonFiniteSteps(mode, max_skips)


def test_the_skip_counters_round_trip_through_their_state():
    policy = NonFiniteSteps("skip", max_skips=10)
    policy.dropped(Net.CRITIC, NAN, 1, 1)
    policy.dropped(Net.GENERATOR, NAN, 1, 1)
    policy.taken(Net.CRITIC)
    state = policy.state_dict()
    assert state == {"skipped": 2, "in_a_row": {"critic": 0, "generator": 1}}
    state["in_a_row"]["generator"] = 99  # a copy: the policy's own dict is not the checkpoint's
    assert policy.in_a_row[Net.GENERATOR] == 1
    other = NonFiniteSteps("skip", max_skips=10)
    other.load_state_dict(policy.state_dict())
    assert other.state_dict() == policy.state_dict()


# ---- fp16's loss scale -----------------------------------------------------------------------------------------
def scaler(scale: float, growth_interval: int = 2000) -> torch.amp.GradScaler:
    """A CPU GradScaler whose scale tensor exists (it is created by the first scale(), as in training)."""
    s = torch.amp.GradScaler("cpu", init_scale=scale, growth_interval=growth_interval)
    s.scale(torch.ones(()))
    return s


def good_step(s: torch.amp.GradScaler) -> None:
    """One optimizer step with finite gradients through the scaler (its growth tracker counts it)."""
    w = nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=0.0)
    s.scale(w.sum()).backward()
    s.step(opt)
    s.update()


def test_an_overflow_lowers_the_scale_by_the_backoff_factor_and_is_counted():
    s, policy = scaler(2.0**10), LossScaleBackoff()
    s.set_backoff_factor(0.25)
    assert policy.overflowed(s)
    assert s.get_scale() == 2.0**8 and policy.overflows == 1
    assert policy.overflowed(s) and s.get_scale() == 2.0**6 and policy.overflows == 2


def test_under_the_floor_a_non_finite_loss_is_no_overflow():
    s, policy = scaler(1.0), LossScaleBackoff(floor=1.0)
    assert policy.overflowed(s)  # at the floor it still is one
    assert s.get_scale() == 0.5 and policy.overflows == 1
    assert not policy.overflowed(s)  # under it: left to stop/skip, the scale as it was, not counted
    assert s.get_scale() == 0.5 and policy.overflows == 1
    assert policy.hint(s) == (" in fp16 (16-mixed), with the loss scale already down to 0.5: not an overflow a lower "
                              "scale avoids; use trainer.precision=bf16-mixed (or 32-true)")
    assert LossScaleBackoff.hint(None) == ""


def test_the_backoff_resets_the_growth_tracker_as_gradscaler_does_on_inf_gradients():
    """growth_interval 2: one good step, a backoff, one good step: GradScaler's own backoff would leave the scale
    where the backoff put it (the tracker restarts at 0), not double it."""
    s, policy = scaler(8.0, growth_interval=2), LossScaleBackoff()
    good_step(s)
    assert s.state_dict()["_growth_tracker"] == 1
    assert policy.overflowed(s)
    assert s.state_dict()["_growth_tracker"] == 0 and s.get_scale() == 4.0
    good_step(s)
    assert s.get_scale() == 4.0
    good_step(s)
    assert s.get_scale() == 8.0  # growth_interval good steps after the backoff: it grows again


def test_the_logged_scale_is_the_scale_the_backward_used():
    s = scaler(2.0**12)
    used = LossScaleBackoff.used(s, torch.device("cpu"))
    assert used.shape == () and used.dtype == torch.float32 and used.item() == 2.0**12
    back_off(s, 2.0**11)
    assert used.item() == 2.0**12  # a value of its own, not a view of the scaler's tensor


def test_the_overflow_count_round_trips_and_old_checkpoints_start_at_0():
    policy = LossScaleBackoff()
    policy.overflows = 7
    other = LossScaleBackoff()
    other.load_state_dict(policy.state_dict())
    assert other.overflows == 7 and policy.state_dict() == {"overflows": 7}
    other.load_state_dict({"skipped": 1, "in_a_row": {"critic": 0, "generator": 0}})  # before overflows were saved
    assert other.overflows == 0


def test_gradscaler_state_dict_still_has_the_private_growth_tracker_that_the_backoff_writes():
    """Pins the one private name steps/loss_scale.py relies on: GradScaler.state_dict()'s "_growth_tracker" (torch
    has no public setter for the tracker; update(new_scale=...) leaves it as it was). If this fails, torch changed
    it: back_off must find another way to restart the growth count."""
    s = scaler(8.0, growth_interval=3)
    assert "_growth_tracker" in s.state_dict()
    good_step(s)
    good_step(s)
    assert s.state_dict()["_growth_tracker"] == 2
    state = s.state_dict()
    state["_growth_tracker"] = 0
    s.load_state_dict(state)  # honoured: the next good step does not complete the interval
    assert s.state_dict()["_growth_tracker"] == 0
    good_step(s)
    assert s.get_scale() == 8.0
    state = s.state_dict()
    state["_growth_tracker"] = 2
    s.load_state_dict(state)  # and the other way: one good step away from growing
    good_step(s)
    assert s.get_scale() == 16.0


def test_update_with_a_new_scale_does_not_reset_the_growth_tracker():
    """Why the backoff does not use the public update(new_scale=...): it would keep the growth count (torch 2.14).
    If this starts failing, torch's update(new_scale) resets the tracker and back_off can use it instead."""
    s = scaler(8.0, growth_interval=2)
    good_step(s)
    s.update(new_scale=4.0)
    assert s.get_scale() == 4.0 and s.state_dict()["_growth_tracker"] == 1


# ---- GANModule's checkpoint state ------------------------------------------------------------------------------
def module(**kwargs) -> GANModule:
    return GANModule(nn.Linear(2, 2), nn.Linear(2, 1), loss=None, optim_g=None, optim_d=None, **kwargs)


def test_the_module_saves_and_loads_the_policies_counters_under_ganlab_skips():
    m = module(on_nonfinite="skip")
    m.nonfinite.dropped(Net.CRITIC, NAN, 1, 1)
    m.nonfinite.dropped(Net.CRITIC, NAN, 2, 2)
    m.backoff.overflows = 4
    ckpt = {}
    m.on_save_checkpoint(ckpt)
    assert ckpt["ganlab_skips"] == {"skipped": 2, "in_a_row": {"critic": 2, "generator": 0}, "overflows": 4}
    ckpt["ganlab_steps"] = {"d_steps": 2, "g_steps": 2}
    resumed = module(on_nonfinite="skip")
    resumed.on_load_checkpoint(ckpt)
    assert (resumed.nonfinite.skipped, resumed.nonfinite.in_a_row, resumed.backoff.overflows) == (
        2, {Net.CRITIC: 2, Net.GENERATOR: 0}, 4)


@pytest.mark.parametrize("skips", [
    None,  # written before skipped steps were counted
    {"skipped": 3, "in_a_row": {"critic": 1, "generator": 0}},  # before fp16 overflows were
])
def test_old_checkpoints_still_load(skips):
    ckpt = {"ganlab_steps": {"d_steps": 5, "g_steps": 5}, **({"ganlab_skips": skips} if skips else {})}
    m = module()
    m.on_load_checkpoint(ckpt)
    skips = skips or {"skipped": 0, "in_a_row": {"critic": 0, "generator": 0}}
    in_a_row = {net.value: n for net, n in m.nonfinite.in_a_row.items()}
    assert (m.nonfinite.skipped, in_a_row, m.backoff.overflows) == (skips["skipped"], skips["in_a_row"], 0)


# ---- DDP: the average over ranks, rank 0's weights at the start -----------------------------------------------
def _ranks(rank: int, world: int, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        # rank r: gradients r + 1 (float32 and float64 parameters), one parameter without a gradient, loss 10 r
        a, b, none = nn.Parameter(torch.zeros(2, 3)), nn.Parameter(torch.zeros(4, dtype=torch.float64)), \
            nn.Parameter(torch.zeros(1))
        a.grad, b.grad = torch.full((2, 3), rank + 1.0), torch.full((4,), rank + 1.0, dtype=torch.float64)
        loss = average_over_ranks([a, b, none], torch.tensor(10.0 * rank, dtype=torch.float16), world)
        mean = sum(r + 1.0 for r in range(world)) / world  # the mean, not the sum
        assert torch.equal(a.grad, torch.full((2, 3), mean)), a.grad
        assert b.grad.dtype == torch.float64 and torch.equal(b.grad, torch.full((4,), mean, dtype=torch.float64))
        assert torch.equal(none.grad, torch.zeros(1))  # a missing gradient counts as zeros
        assert loss.shape == () and loss.item() == 10.0 * sum(range(world)) / world

        # every rank's module becomes rank 0's: parameters and buffers, float and integer
        torch.manual_seed(rank)
        net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
        net[1].running_mean.fill_(rank)
        net[1].num_batches_tracked.fill_(rank + 5)
        broadcast_from_rank0(net)
        torch.manual_seed(0)
        ref = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
        ref[1].num_batches_tracked.fill_(5)
        for (k, v), w in zip(net.state_dict().items(), ref.state_dict().values()):
            assert torch.equal(v, w), (rank, k)
        assert all(p.requires_grad for p in net.parameters())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gradients_and_loss_are_averaged_over_ranks_and_rank_0s_weights_broadcast(tmp_path):
    # forked from this worker, which has torch and ganlab imported: spawned ranks import them again (~8 s each)
    mp.start_processes(_ranks, args=(2, str(tmp_path / "store")), nprocs=2, join=True, start_method="fork")

"""The EMA generator (ema.py) against a plain-Python reference of TensorFlow's warm-up rule
d_t = min(decay, (1 + t) / (10 + t)), its update count surviving a state_dict round trip, and its standing
BatchNorm statistics against an independent computation."""
import pytest
import torch

from ganlab.ema import EMA


def reference(values: list[float], decay: float) -> float:
    avg = values[0]  # the copy starts as G's initial weight
    for t, v in enumerate(values[1:]):
        d = min(decay, (1 + t) / (10 + t))
        avg = d * avg + (1 - d) * v
    return avg


def test_warm_up_follows_tensorflows_rule_then_the_fixed_decay():
    g = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(g, decay=0.95)
    values = [g.weight.item()]
    for step in range(400):  # d_t reaches 0.95 at t = 170: both regimes are crossed
        with torch.no_grad():
            g.weight.fill_(float(torch.sin(torch.tensor(step * 0.1))) + step * 0.01)
        values.append(g.weight.item())
        ema.update(g)
    assert abs(ema.model.weight.item() - reference(values, 0.95)) < 1e-5


def test_a_short_run_forgets_the_initial_weights():
    g = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        g.weight.fill_(0.0)
    ema = EMA(g, decay=0.999)
    with torch.no_grad():
        g.weight.fill_(1.0)  # G moves once, then stays
    for _ in range(20):
        ema.update(g)
    # warm-up: the initial weight keeps prod (1 + t) / (10 + t) over t < 20 ~ 1e-8 of the copy; a fixed 0.999
    # would keep 0.999^20 = 98% of it
    assert ema.model.weight.item() > 0.999


def test_update_count_is_checkpointed():
    g = torch.nn.Linear(3, 2)
    ema = EMA(g, decay=0.999)
    for _ in range(7):
        ema.update(g)
    again = EMA(g, decay=0.999)
    again.load_state_dict(ema.state_dict())
    assert again.updates.item() == 7


class TinyG(torch.nn.Module):
    """z (B, 4) -> Linear -> BatchNorm1d -> (B, 3), with a non-BatchNorm buffer (as spectral norm's u)."""

    def __init__(self):
        super().__init__()
        self.z_dim = 4
        self.fc = torch.nn.Linear(4, 3)
        self.bn = torch.nn.BatchNorm1d(3)
        self.register_buffer("u", torch.zeros(3))

    def forward(self, z, y=None):
        return self.bn(self.fc(z))


def trained_pair(steps: int = 5):
    torch.manual_seed(0)
    g = TinyG()
    ema = EMA(g, decay=0.9)
    g.train()
    for step in range(steps):
        with torch.no_grad():
            g.fc.weight.add_(0.3 * torch.randn_like(g.fc.weight))
            g.u.fill_(step)
        g(torch.randn(32, 4) * 3 + 1)  # G's running statistics move with G's own batches
        ema.update(g)
    return g, ema


def test_standing_statistics_are_the_copys_own_batch_statistics_of_fixed_latents():
    from ganlab.ema import STANDING_BATCH, STANDING_N, STANDING_SEED
    from ganlab.sampling import latents
    g, ema = trained_pair()
    copy = ema.calibrated()
    assert not copy.training
    # independently: the copy's pre-BatchNorm activations of the fixed latents, batch by batch
    h = torch.nn.functional.linear(latents(STANDING_N, 4, STANDING_SEED), copy.fc.weight, copy.fc.bias)
    batches = h.reshape(STANDING_N // STANDING_BATCH, STANDING_BATCH, 3)
    torch.testing.assert_close(copy.bn.running_mean, batches.mean(1).mean(0))
    torch.testing.assert_close(copy.bn.running_var, batches.var(1, unbiased=True).mean(0))
    assert not torch.allclose(copy.bn.running_mean, g.bn.running_mean, atol=1e-2)  # not G's statistics
    assert copy.bn.momentum == g.bn.momentum  # restored after the calibration
    assert torch.equal(copy.u, g.u)  # other buffers are still G's


def test_checkpoints_hold_standing_statistics_and_a_resumed_copy_computes_the_same():
    g, ema = trained_pair()
    state = {k: v.clone() for k, v in ema.state_dict().items()}  # a checkpoint calibrates first (clones: what it wrote)
    torch.testing.assert_close(state["model.bn.running_mean"], ema.calibrated().bn.running_mean)
    again = EMA(TinyG(), decay=0.9)
    again.load_state_dict(state)
    again.model.bn.running_mean.fill_(5.0)  # whatever statistics it held: they are recomputed from the weights
    g.train()
    g(torch.randn(32, 4))
    for e in (ema, again):
        e.update(g)
    torch.testing.assert_close(again.calibrated().bn.running_mean, ema.calibrated().bn.running_mean)
    torch.testing.assert_close(again.calibrated().bn.running_var, ema.calibrated().bn.running_var)


def test_a_sync_batchnorm_copy_calibrates_alone_as_a_plain_one(monkeypatch):
    _, ema = trained_pair()
    plain = ema.calibrated().bn.running_var.clone()
    keys = list(ema.state_dict())
    ema.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(ema.model)  # as trainer.sync_batchnorm=true
    tensors = [ema.model.bn.weight, ema.model.bn.bias, ema.model.bn.running_mean, ema.model.bn.running_var]
    ema.calibrated_at = -1

    def all_reduce(*_):  # SyncBatchNorm's own forward would wait on the other ranks: rank 0 samples alone
        raise AssertionError("the calibration ran SyncBatchNorm's synchronising forward")
    monkeypatch.setattr(torch.nn.SyncBatchNorm, "forward", all_reduce)
    synced = ema.calibrated()
    assert type(synced.bn) is torch.nn.BatchNorm1d  # the class G was built with
    bn = synced.bn  # holding the very tensors it held, so the state_dict keys (and optimizer-free state) stay
    assert all(a is b for a, b in zip([bn.weight, bn.bias, bn.running_mean, bn.running_var], tensors))
    assert list(ema.state_dict()) == keys
    torch.testing.assert_close(synced.bn.running_var, plain)


def test_a_copy_lightning_reverted_after_fit_still_calibrates():
    """After a fit with trainer.sync_batchnorm=true Lightning turns the SyncBatchNorm layers into its own BatchNorm
    class (LayerSync.revert): the calibration finds the layers by name, whatever their class."""
    from lightning.pytorch.plugins import TorchSyncBatchNorm
    _, ema = trained_pair()
    plain = ema.calibrated().bn.running_var.clone()
    sync = TorchSyncBatchNorm()
    ema.model = sync.revert(sync.apply(ema.model))
    ema.model.bn.running_var.fill_(7.0)
    ema.calibrated_at = -1
    torch.testing.assert_close(ema.calibrated().bn.running_var, plain)


def test_a_g_built_with_sync_batchnorm_is_refused():
    g = torch.nn.SyncBatchNorm.convert_sync_batchnorm(TinyG())
    with pytest.raises(ValueError, match=r"SyncBatchNorm layers \(bn\): build G with BatchNorm1d/2d/3d"):
        EMA(g)


def test_an_update_reads_nothing_back_to_the_host():
    """The decay d_t is a device tensor and the update never reads it (nor anything else) on the host: a CUDA graph
    capture (trainer=fast) fails on a host read. Meta tensors hold no values, so any read raises."""
    g = TinyG()
    ema = EMA(g, decay=0.999).to("meta")
    ema.update(g.to("meta"))
    assert ema.updates.device.type == "meta"

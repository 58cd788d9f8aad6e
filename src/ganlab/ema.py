"""Exponential moving average of the generator's weights (Karras et al. 2018; Yazici et al. 2019).

A frozen copy of G, updated after every generator step as theta_ema <- d_t * theta_ema + (1 - d_t) * theta,
with d_t = min(decay, (1 + t) / (10 + t)) at the t-th update (t = 0, 1, ...): the warm-up of TensorFlow's
tf.train.ExponentialMovingAverage(num_updates=...), so that early on the copy averages the last ~t/10 steps
instead of holding ~decay^t of G's random initial weights (0.999^1000 = 0.37: a 1,000-iteration run's samples
would still be mostly noise); d_t reaches 0.999 at t ~ 9,000. The update count is a buffer: checkpointed, and
updated on the device (CUDA-graph safe, trainer=fast).

BatchNorm statistics are not G's: G's running means and variances belong to G's weights, not to their average
(on Fashion-MNIST at 4,000 iterations, the EMA copy with G's statistics scored classifier FID 86.5, with its own
80.4). So a noise-driven G's copy gets "standing statistics" (BigGAN-PyTorch's `--accumulate_stats`, Brock et al. 2019):
before anything reads it (`calibrated()`: sampling, metrics; and every state_dict, so checkpoints hold them),
its BatchNorm layers are reset and run in training mode over STANDING_N fixed latents (sampling.latents, seed
STANDING_SEED) in batches of STANDING_BATCH, averaging the batches' statistics (momentum None). That is a pure
function of the averaged weights, so a resumed run computes the same statistics. Other buffers (spectral-norm
vectors; every buffer of a G without latents, e.g. CycleGAN's translators) are copied from G at each update.
Being a submodule of the LightningModule, it is saved in checkpoints and moved across devices with the rest.

`trainer.sync_batchnorm=true` makes Lightning turn every BatchNorm of the LightningModule into a SyncBatchNorm, the
copy's too. The copy is never trained, and it is calibrated where it is read (rank 0 draws samples and metrics
alone), where a SyncBatchNorm's training-mode forward would wait on the other ranks for good. So before calibrating,
the copy's SyncBatchNorm layers are given back the class G was built with (`unsynced`: the same parameter and
buffer tensors, so the state_dict keys and values stay as they were).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .nets.layers import BATCHNORMS
from .sampling import generate

STANDING_N = 4096       # latents whose batch statistics become the copy's BatchNorm statistics
STANDING_BATCH = 256
STANDING_SEED = 1       # not 0: the metrics' and sample grids' latents (sampling.py) are seed 0's


class EMA(nn.Module):
    def __init__(self, model: nn.Module, decay: float = 0.999):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # () t, the updates so far
        # {name: class} of G's BatchNorm layers, as G was built (before any trainer.sync_batchnorm conversion)
        self.norms = {name: type(m) for name, m in model.named_modules() if isinstance(m, BATCHNORMS)}
        synced = [name for name, kind in self.norms.items() if issubclass(kind, nn.SyncBatchNorm)]
        if synced:  # unsynced() could not tell which plain class (1d, 2d, 3d) each should become
            raise ValueError(f"the EMA generator's G has SyncBatchNorm layers ({', '.join(synced)}): build G with "
                             f"BatchNorm1d/2d/3d and set trainer.sync_batchnorm=true to synchronise them across ranks")
        self.standing = bool(self.norms) and hasattr(model, "z_dim")  # BatchNorm in a G drawn from latents
        # names of the buffers copied from G: all but the BatchNorm statistics when they are standing ones
        self.copied = {name for name, _ in model.named_buffers()
                       if not (self.standing and name.rpartition(".")[0] in self.norms)}
        self.calibrated_at = -1  # the update count the BatchNorm statistics were computed at (-1: never)
        self.register_state_dict_pre_hook(lambda module, prefix, keep_vars: module.calibrated())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p, p = list(self.model.parameters()), list(model.parameters())
        t = self.updates
        keep = ((1 + t) / (10 + t)).clamp(max=self.decay)  # () float: d_t
        weight = (1 - keep).to(ema_p[0].dtype)  # () on the device: lerp's Tensor-weight form reads it there (no sync)
        for own, live in zip(ema_p, p):  # one lerp per tensor (11 for DCGAN's G); trainer=fast replays them in a graph
            own.lerp_(live, weight)
        t.add_(1)
        for (name, own), (_, live) in zip(self.model.named_buffers(), model.named_buffers()):
            if name in self.copied:
                own.copy_(live)

    @torch.no_grad()
    def calibrated(self) -> nn.Module:
        """The copy, in eval mode, its BatchNorm statistics computed for its present weights (standing)."""
        if not self.standing or self.calibrated_at == int(self.updates):
            return self.model.eval()
        self.unsynced()
        norms = [self.model.get_submodule(name) for name in self.norms]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # the cumulative mean over the batches
        device = next(self.model.parameters()).device
        generate(self.model.train(), STANDING_N, STANDING_SEED, STANDING_BATCH, device)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        self.calibrated_at = int(self.updates)
        return self.model.eval()

    def unsynced(self) -> None:
        """Give each SyncBatchNorm layer of the copy back the class G was built with, holding the same tensors: its
        statistics are then this process's alone (see the module's docstring)."""
        for name, kind in self.norms.items():
            sync = self.model.get_submodule(name)
            if not isinstance(sync, nn.SyncBatchNorm):
                continue
            plain = kind(sync.num_features, sync.eps, sync.momentum, sync.affine, sync.track_running_stats,
                         device="meta")  # its own tensors are replaced by sync's below
            plain.weight, plain.bias = sync.weight, sync.bias  # None without affine
            plain.running_mean, plain.running_var = sync.running_mean, sync.running_var
            plain.num_batches_tracked = sync.num_batches_tracked
            self.model.set_submodule(name, plain.train(sync.training))

    def forward(self, *args, **kwargs):
        return self.calibrated()(*args, **kwargs)

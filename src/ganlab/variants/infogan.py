"""InfoGAN (Chen et al. 2016): latent codes c whose mutual information with G(z, c) is maximised through a
variational lower bound, with an auxiliary distribution Q(c | x) that shares D's trunk (a head on its features).

Codes: one categorical code of `categorical` values, fed to G like a class label (one-hot beside z; nets'
`num_classes`), and `continuous` codes: the first `continuous` entries of z. They are N(0, 1) rather than the
paper's U(-1, 1), so that the one sampler (sampling.py: metrics, sample grids, sample.py, evaluate.py) draws
them from the training prior without knowing about InfoGAN; Q models each as a Gaussian of unit variance around
its predicted mean.

    L_I = CE(Q_cat(G(z, c)), c) + 1/2 sum_j (z_j - mu_j(G(z, c)))^2          (the negative log-likelihood of Q)
    MI lower bound (nats) = H(c) - E[-log Q(c | x)]
                          = log(K) - CE + sum_j (1/2 - 1/2 E (z_j - mu_j)^2)   (H of N(0,1) = 1/2 log(2 pi e))

D minimises L_adv + lambda L_I (the Q head and the shared trunk), G minimises L_adv + lambda L_I; the
continuous terms are weighted by lambda_cont (the paper uses a smaller lambda for continuous codes).
Logged: train/mi_bound (the bound above, on the generator step's batch; at most log K + 0 + ...).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..logged import Logged
from ..module import GANModule, Latent
from ..nets.heads import Heads, mlp_head
from ..sampling import latents
from ..steps.nonfinite import Net


class InfoGAN(GANModule):
    LOGS = {**GANModule.LOGS, "mi_bound": Logged(Net.GENERATOR)}

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *args, categorical: int = 10,
                 continuous: int = 2, lambda_cat: float = 1.0, lambda_cont: float = 0.1, **kwargs):
        if categorical == 1 or categorical < 0:
            raise ValueError(f"categorical must be 0 (none) or >= 2 values, got {categorical}")
        if not 0 <= continuous <= generator.z_dim:
            raise ValueError(f"continuous must be in [0, net.g.z_dim={generator.z_dim}], got {continuous}")
        if categorical == 0 and continuous == 0:
            raise ValueError("InfoGAN needs a code: set model.categorical >= 2 or model.continuous >= 1")
        if lambda_cat < 0 or lambda_cont < 0:
            raise ValueError(f"model.lambda_cat and model.lambda_cont must be >= 0, got {lambda_cat}, {lambda_cont}")
        q = mlp_head(discriminator.features_dim, categorical + continuous)  # (B, F) -> (B, K + J)
        super().__init__(generator, Heads(discriminator, q=q), *args, **kwargs)
        self.categorical, self.continuous = int(categorical), int(continuous)
        self.lambda_cat, self.lambda_cont = float(lambda_cat), float(lambda_cont)

    @classmethod
    def net_classes(cls, model_cfg: Mapping, data_classes: int | None) -> tuple[int, int]:
        return int(model_cfg.get("categorical", 10)), 0  # the categorical code goes into G like a label

    def latent(self, n: int, y: Tensor | None) -> Latent:
        c = self.ranks.randint(self.categorical, n, device=self.device) if self.categorical else None  # (n,)
        return Latent(self.sample_z(n), c)

    def information(self, q: Tensor, latent: Latent) -> tuple[Tensor, Tensor]:
        """(weighted L_I to minimise, the MI lower bound in nats) from Q's outputs q (B, K + J)."""
        loss, bound = q.new_zeros(()), q.new_zeros(())
        if self.categorical:
            ce = F.cross_entropy(q[:, :self.categorical], latent.c)
            loss, bound = loss + self.lambda_cat * ce, bound + math.log(self.categorical) - ce
        if self.continuous:
            sq = (latent.z[:, :self.continuous] - q[:, self.categorical:]).pow(2).mean(0)  # (J,)
            loss = loss + self.lambda_cont * 0.5 * sq.sum()
            bound = bound + (0.5 - 0.5 * sq).sum()
        return loss, bound

    def d_objective(self, real, fake, y, latent):
        loss, logs = super().d_objective(real, fake, y, latent)
        info, _ = self.information(fake["q"], latent)
        return loss + info, logs

    def g_objective(self, fake, real, y, latent):
        loss, logs = super().g_objective(fake, real, y, latent)
        info, bound = self.information(fake["q"], latent)
        logs.update(self.logs(mi_bound=bound))
        return loss + info, logs

    @torch.no_grad()
    def traversal(self, code: int | None, columns: int, seed: int = 0) -> Tensor:
        """Images (K * V, *shape) for a latent-traversal grid, V = columns: one row per category, one column per
        value of continuous code `code` (evenly from -2 to 2), every other latent fixed (one z drawn from `seed`).
        code=None: the columns are V different draws of z instead."""
        g = self.ema.calibrated() if self.ema is not None else self.generator
        was_training = g.training
        g.eval()
        rows = max(self.categorical, 1)
        z_dim = self.generator.z_dim
        # the one sampler's latents (sampling.py): drawn on the CPU, the same grid on any device
        if code is None:
            z = latents(columns, z_dim, seed).to(self.device).repeat(rows, 1)  # (K * V, z_dim): the same V per row
        else:
            z = latents(1, z_dim, seed).to(self.device).repeat(rows * columns, 1)  # (K * V, z_dim)
            z[:, code] = torch.linspace(-2.0, 2.0, columns, device=self.device).repeat(rows)  # value varies fastest
        c = torch.arange(rows, device=self.device).repeat_interleave(columns) if self.categorical else None  # (K*V,)
        out = g(z, c)
        g.train(was_training)
        return out

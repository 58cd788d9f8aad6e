"""Semi-supervised GAN (Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 5; Odena 2016):
the discriminator is a classifier of K real classes plus a K+1-th class "generated", trained on a few labelled
images (data.labelled = N per class), on all images without their labels, and on the generator's fakes.

D's K class logits l(x) (B, K) are a linear head on its features (nets/heads.py); the fake class's logit is fixed
at 0 (a softmax over K+1 logits is over-parameterised, Salimans et al.), so with Z(x) = sum_k exp l_k(x)

    p(y = k | x, real)  = softmax(l(x))_k
    D(x) = p(real | x)  = Z(x) / (Z(x) + 1) = sigmoid(log Z(x))

and D's real-vs-fake logit is log Z(x) = logsumexp_k l_k(x): `critic` returns it as the usual `logits`, so the
configured adversarial loss, the regularizers and feature matching read it like any critic's. The base net's
own real-vs-fake head is not used (its parameters get no gradients and never move).

    L_D = L_sup + unsup_weight * L_unsup
    L_sup   = CE(l(x_l), y_l)                   on a labelled minibatch, drawn at each critic step
    L_unsup = loss.d(log Z(x), log Z(G(z)))     non-saturating: -log D(x) - log(1 - D(G(z)))

The labelled minibatch of critic step s is a pure function of (data seed, s, rank) - consecutive slices of an
endless sequence of permutations of the labelled subset, permutation e drawn from (seed, e) - so a resumed run
draws exactly the batches an uninterrupted one would. G is trained by feature matching (model.feature_matching,
Salimans et al.'s best semi-supervised setting) or by the configured loss's g on log Z(G(z)).

Logged: train/d_sup, train/d_unsup (and train/d_loss = L_D), and val/accuracy: D's classification accuracy on
the data's test split (argmax of the K class logits, D in eval mode), every `eval_every` iterations and at the end.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..log import emit
from ..labels import Labels
from ..logged import Logged
from ..module import GANModule, Latent
from ..nets.heads import Heads
from ..steps.nonfinite import Net

_LABELLED_STREAM = 7_919  # offsets the labelled draws' permutations from the data's epochs of the same seed


def real_logit(classes: Tensor) -> Tensor:
    """D's real-vs-fake logit (B,) from its K class logits (B, K), the fake class's logit fixed at 0:
    log Z = logsumexp_k l_k, so sigmoid(log Z) = Z / (Z + 1) = 1 - p(fake | x)."""
    return classes.logsumexp(1)


class SGAN(GANModule):
    labels = Labels.SUBSET
    LOGS = {"d_loss": Logged(Net.CRITIC), "d_sup": Logged(Net.CRITIC), "d_unsup": Logged(Net.CRITIC),
            "g_loss": Logged(Net.GENERATOR)}
    not_capturable = "its labelled batches are picked on the host from the step count"

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *args, num_classes: int,
                 labelled_batch: int = 100, unsup_weight: float = 1.0, eval_every: int = 500, **kwargs):
        if num_classes < 2:
            raise ValueError(f"a semi-supervised GAN classifies K >= 2 classes, the data has {num_classes}")
        if labelled_batch < 1:
            raise ValueError(f"model.labelled_batch must be >= 1 (labelled images per critic step), got {labelled_batch}")
        if unsup_weight < 0:
            raise ValueError(f"model.unsup_weight must be >= 0, got {unsup_weight}")
        if eval_every < 1:
            raise ValueError(f"model.eval_every must be >= 1 (iterations between test accuracies), got {eval_every}")
        if kwargs.get("pack", 1) != 1:
            raise ValueError(f"model.pack={kwargs['pack']}: the semi-supervised critic classifies single images; "
                             f"set model.pack=1")
        critic = Heads(discriminator, classes=nn.Linear(discriminator.features_dim, num_classes))  # (B, F) -> (B, K)
        super().__init__(generator, critic, *args, **kwargs)
        self.num_classes, self.labelled_batch_size = int(num_classes), int(labelled_batch)
        self.unsup_weight, self.eval_every = float(unsup_weight), int(eval_every)
        self.x_l = self.y_l = None  # the labelled subset (K * N, C, S, S), (K * N,), from the data (`attach`)
        self.x_test = self.y_test = None  # the test split (M, C, S, S), (M,)
        self.data_seed = 0
        self._perm: tuple[int, Tensor] | None = None  # (epoch, its permutation (K * N,) of the subset): the latest

    @classmethod
    def net_classes(cls, model_cfg: Mapping, data_classes: int | None) -> tuple[int, int]:
        return 0, 0  # G is unconditional; D reads images only, its class head is added here

    # ---- data -------------------------------------------------------------------------------------------
    def attach(self, datamodule) -> None:
        """Take the labelled subset and the test split from the datamodule, onto this module's device."""
        subset, test = getattr(datamodule, "labelled_subset", None), getattr(datamodule, "test_split", None)
        if subset is None or test is None:
            raise ValueError(f"model=sgan needs a labelled subset and a test split (data.labelled=N on fashion_mnist, "
                             f"mnist or cifar10); data={type(datamodule).__name__} has none")
        x_l, y_l = subset()
        x_t, y_t = test()
        self.x_l, self.y_l = x_l.to(self.device), y_l.to(self.device)
        self.x_test, self.y_test = x_t.to(self.device), y_t.to(self.device)
        self.data_seed = int(datamodule.seed)

    def on_fit_start(self) -> None:
        self.attach(self.trainer.datamodule)

    def _permutation(self, epoch: int) -> Tensor:
        """Permutation `epoch` (K * N,) of the labelled subset, drawn from (data seed, epoch) on the CPU."""
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.data_seed * 1_000_003 + _LABELLED_STREAM + epoch)
            self._perm = (epoch, torch.randperm(len(self.y_l), generator=g))
        return self._perm[1]

    def labelled_batch(self, step: int) -> tuple[Tensor, Tensor]:
        """The labelled minibatch (B_l, C, S, S), (B_l,) of critic step `step` on this rank: positions
        [j B_l, (j + 1) B_l) of the endless sequence of permutations of the subset, j = step * world + rank."""
        n, b = len(self.y_l), self.labelled_batch_size
        rank, world = self.ranks  # (0, 1) outside a Trainer
        pos = torch.arange(b) + (step * world + rank) * b  # (B_l,)
        epochs, within = pos // n, pos % n  # (B_l,), (B_l,)
        idx = torch.empty(b, dtype=torch.long)
        for e in range(int(epochs[0]), int(epochs[-1]) + 1):  # one or two epochs (more when B_l > K * N)
            mine = epochs == e
            idx[mine] = self._permutation(e)[within[mine]]
        idx = idx.to(self.y_l.device)
        return self.x_l[idx], self.y_l[idx]

    # ---- the hooks --------------------------------------------------------------------------------------
    def critic(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        out = super().critic(x, y)
        return {**out, "logits": real_logit(out["classes"])}  # (B,) log Z(x): the K+1 classes' real-vs-fake logit

    def d_objective(self, real: dict[str, Tensor], fake: dict[str, Tensor], y: Tensor | None,
                    latent: Latent) -> tuple[Tensor, dict[str, Tensor]]:
        unsup = self.loss.d(real["logits"], fake["logits"])  # the unlabelled real batch (its y is ignored) and fakes
        x_l, y_l = self.labelled_batch(self.d_steps)
        sup = F.cross_entropy(self.critic(self.perturb(x_l))["classes"], y_l)  # -log p(y_l | x_l, real)
        loss = sup + self.unsup_weight * unsup
        return loss, self.logs(d_loss=loss, d_sup=sup, d_unsup=unsup)

    # ---- evaluation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def accuracy(self, batch_size: int = 1000) -> float:
        """D's classification accuracy on the test split: argmax of its K class logits, D in eval mode."""
        d = self.discriminator
        was_training = d.training
        d.eval()
        hits = sum((d(self.x_test[i:i + batch_size])["classes"].argmax(1) == self.y_test[i:i + batch_size]).sum()
                   for i in range(0, len(self.y_test), batch_size))
        d.train(was_training)
        return float(hits) / len(self.y_test)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        it = self.iteration
        if self.at_iteration_end and (it % self.eval_every == 0 or it >= self.iterations):
            emit(self.trainer, it, {"val/accuracy": self.accuracy()})

    @classmethod
    def logged(cls, cfg: Mapping) -> set[str]:
        return super().logged(cfg) | {"val/accuracy"}

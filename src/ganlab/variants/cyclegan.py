"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation between domains A and B.

Two generators, G_ab: A -> B and G_ba: B -> A, and two critics, D_a (is it a real A image?) and D_b. With the
adversarial loss l (losses.py; least squares in the paper) and L1 distances:

    D_b minimises  l.d(D_b(b), D_b(pool_b(G_ab(a))))                       (D_a likewise, on a and G_ba(b))
    G   minimises  gan_weight * (l.g(D_b(G_ab(a))) + l.g(D_a(G_ba(b))))
                   + lambda_cycle * (|G_ba(G_ab(a)) - a| + |G_ab(G_ba(b)) - b|)              cycle consistency
                   + lambda_cycle * lambda_identity * (|G_ab(b) - b| + |G_ba(a) - a|)        identity (sec. 5.2)

The critics see fakes through an image pool of the last `pool_size` fakes of each domain (Shrivastava et al.
2017): half of a batch's fakes are swapped for older ones once the pool is full, so the critics do not chase
the generators' latest output. The pools are state: their images are buffers in the module's state dict and
their fill counts and random streams are saved by on_save_checkpoint, so a resumed run is exact.

Batches of two-domain data (data/unpaired.py) are (a (B, C, H, W), b (B, C, H, W)) where GANModule's are
(x, y): the loop hands them to `critic_loss(a, b)` and `generator_loss(a, b)`, the two hooks overridden here.

The nets built from net.g and net.d are G_ab and D_b; G_ba and D_a are copies re-drawn from the nets' own
init. They live in `generator = ModuleDict(ab, ba)` and `discriminator = ModuleDict(a, b)`, so GANModule's
two optimizers (one over both generators, one over both critics, as in the official code), finite checks,
toggling, EMA and checkpoints cover all four nets. One difference of order from the official code, none of
semantics: the loop steps the critics first, so their fakes come from an extra no-grad pass of the generators
(the same generators the official code's fakes come from, as those are made before its generator step).

`sample(n)` is n held-out A images translated to B (data.held_out), so the sample grids and the metrics (FID
of G_ab(A) against real B: the data's `real(n)` is B) judge the A -> B translation.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..logged import Logged, declared
from ..module import GANModule
from ..regularizers import Adds, critic_penalties, penalties
from ..steps.nonfinite import Net


class ImagePool(nn.Module):
    """A history of up to `size` past fakes (Shrivastava et al. 2017, as CycleGAN's official code keeps it).

    query(x): while the pool is filling, each fake goes in and comes back as is; once full, each fake in turn,
    with probability 1/2, is swapped for a random image of the pool (which it replaces), else comes back as is.
    size=0: no pool, fakes come back as they are. Decisions are drawn on the host from the pool's own
    generator, so querying costs no device sync and touches no other random stream."""

    def __init__(self, size: int, shape: tuple[int, ...], seed: int = 0):
        super().__init__()
        if size < 0:
            raise ValueError(f"model.pool_size must be >= 0 (0: no pool), got {size}")
        self.size = int(size)
        self.register_buffer("images", torch.zeros(self.size, *shape))  # (size, C, H, W)
        self.count = 0  # images in the pool
        self.rng = torch.Generator().manual_seed(int(seed))

    @torch.no_grad()
    def query(self, x: Tensor) -> Tensor:
        """Fakes x (B, C, H, W) -> the batch the critic sees (B, C, H, W)."""
        if self.size == 0:
            return x
        swap = (torch.rand(len(x), generator=self.rng) < 0.5).tolist()
        slot = torch.randint(self.size, (len(x),), generator=self.rng).tolist()
        both = torch.cat([self.images, x.to(self.images.dtype)])  # (size + B, ...): the pool, then the batch
        holds = list(range(self.size))  # the row of `both` each slot holds after this query
        take = []  # the row of `both` each output takes
        for i in range(len(x)):  # in turn, so a fake stored by this query can come back for a later one
            row = self.size + i
            if self.count < self.size:
                holds[self.count] = row
                self.count += 1
                take.append(row)
            elif swap[i]:
                take.append(holds[slot[i]])
                holds[slot[i]] = row
            else:
                take.append(row)
        rows = torch.tensor(take + holds, device=x.device)
        picked = both[rows]  # one gather: (B + size, ...)
        self.images.copy_(picked[len(x):])
        return picked[:len(x)].to(x.dtype)

    def stream_state(self) -> dict:
        """What the state dict lacks: the fill count and the random stream (saved by CycleGAN's checkpoints)."""
        return {"count": self.count, "rng": self.rng.get_state()}

    def load_stream_state(self, state: dict) -> None:
        self.count = int(state["count"])
        self.rng.set_state(state["rng"])


def _redrawn(net: nn.Module) -> nn.Module:
    """A copy of net with fresh weights from the net's own init (`init_weights`), else each layer's default."""
    twin = copy.deepcopy(net)
    if hasattr(twin, "init_weights"):
        twin.init_weights()
    else:
        for m in twin.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return twin


class CycleGAN(GANModule):
    translates = True  # trains on two-domain data only (batches (a, b)), and its generators read images, not noise
    not_capturable = "its image pools decide on the host which past fakes the critics see"
    observes_real_logits = False  # its critic step is its own, two critics
    LOGS = {**GANModule.LOGS, "cycle": Logged(Net.GENERATOR),
            "identity": Logged(Net.GENERATOR, lambda cfg: cfg["model"].get("lambda_identity", 0.5) > 0)}

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *args, lambda_cycle: float = 10.0,
                 lambda_identity: float = 0.5, pool_size: int = 50, gan_weight: float = 1.0, **kwargs):
        if hasattr(generator, "z_dim") or not hasattr(generator, "shape"):
            raise ValueError(f"model=cyclegan translates images, but net.g ({type(generator).__name__}) draws them "
                             f"from noise: use an image-to-image net (net=cyclegan)")
        if lambda_cycle < 0 or lambda_identity < 0 or gan_weight < 0:
            raise ValueError(f"model.lambda_cycle, model.lambda_identity and model.gan_weight must be >= 0, got "
                             f"{lambda_cycle}, {lambda_identity}, {gan_weight}")
        if kwargs.get("pack", 1) > 1 or kwargs.get("feature_matching", False) or kwargs.get("reuse_fakes", False):
            raise ValueError("model=cyclegan supports none of model.pack > 1, model.feature_matching=true and "
                             "model.reuse_fakes=true (critics of single images, adversarial loss, its own two "
                             "steps): set model.pack=1, model.feature_matching=false, model.reuse_fakes=false")
        for name, reg in (kwargs.get("regularizers") or {}).items():
            if Adds.OUTPUT_PENALTY in reg.adds:
                raise ValueError(f"regularizer.{name} penalises one critic's outputs (LeCam keeps one pair of "
                                 f"averages), and model=cyclegan has two critics: remove it (gp, r1 and r2 apply to "
                                 f"each critic)")
        shape = tuple(generator.shape)
        super().__init__(nn.ModuleDict({"ab": generator, "ba": _redrawn(generator)}),
                         nn.ModuleDict({"a": _redrawn(discriminator), "b": discriminator}), *args, **kwargs)
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        self.gan_weight = float(gan_weight)
        seed = torch.initial_seed() % 2**62  # train.py seeded it (cfg.seed): the pools' draws follow the run's seed
        self.pools = nn.ModuleDict({"a": ImagePool(pool_size, shape, seed), "b": ImagePool(pool_size, shape, seed + 1)})

    # ---- checkpoints: the pools' fill counts and random streams (their images are in the state dict) --------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["ganlab_pools"] = {name: pool.stream_state() for name, pool in self.pools.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        for name, pool in self.pools.items():
            pool.load_stream_state(checkpoint["ganlab_pools"][name])

    # ---- translation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, direction: str, x: Tensor, batch_size: int = 256) -> Tensor:
        """x (N, C, H, W) translated by G_ab ("ab") or G_ba ("ba") (their EMA copies if kept), in eval mode."""
        nets = self.ema.calibrated() if self.ema is not None else self.generator
        g = nets[direction]
        was_training = g.training
        g.eval()
        out = torch.cat([g(x[i:i + batch_size].to(self.device)) for i in range(0, len(x), batch_size)])
        g.train(was_training)
        return out  # (N, C, H, W)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, batch_size: int = 256) -> Tensor:
        """G_ab of n fixed held-out A images of the data (fewer when it has fewer): (n, C, H, W). A translation
        draws no latent, so `seed` (the samplers' signature) changes nothing."""
        return self.translate("ab", self.trainer.datamodule.held_out("a", n, self.device), batch_size)

    # ---- the two losses of one iteration ------------------------------------------------------------------
    def critic_loss(self, real_a: Tensor, real_b: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Both critics' losses on a batch (a, b), each against its pool of the generators' fakes."""
        with torch.no_grad():
            fakes = {"b": self.generator["ab"](real_a), "a": self.generator["ba"](real_b)}  # (B, C, H, W) each
        loss, logs = 0.0, {}
        for name, real in (("a", real_a), ("b", real_b)):
            critic = self.discriminator[name]
            real, fake = self.perturb(real), self.perturb(self.pools[name].query(fakes[name]))
            real_out, fake_out = critic(real), critic(fake)
            d_loss, d_logs = self.d_objective(real_out, fake_out, None, None)
            penalties = critic_penalties(self.regularizers, self.d_steps, critic, real, fake, real_out["logits"],
                                         fake_out["logits"], self.ranks, self.loss_scaler)  # no output ones (init)
            for reg_name, pen in penalties.items():
                d_loss = d_loss + pen
                logs[f"train/{reg_name}_{name}"] = pen.detach()
            loss = loss + d_loss
            logs.update({f"{k}_{name}": v for k, v in d_logs.items()})  # train/d_loss_a, train/d_loss_b
        logs["train/d_loss"] = logs["train/d_loss_a"] + logs["train/d_loss_b"]
        return loss, logs

    def generator_loss(self, real_a: Tensor, real_b: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        g, d = self.generator, self.discriminator
        fake_b, fake_a = g["ab"](real_a), g["ba"](real_b)  # (B, C, H, W) each
        adversarial = (self.loss.g(d["b"](self.perturb(fake_b))["logits"])
                       + self.loss.g(d["a"](self.perturb(fake_a))["logits"]))
        cycle_a = (g["ba"](fake_b) - real_a).abs().mean()  # A -> B -> A
        cycle_b = (g["ab"](fake_a) - real_b).abs().mean()  # B -> A -> B
        loss = self.gan_weight * adversarial + self.lambda_cycle * (cycle_a + cycle_b)
        if self.lambda_identity == 0:
            return loss, self.logs(g_loss=adversarial, cycle=0.5 * (cycle_a + cycle_b))
        identity = (g["ab"](real_b) - real_b).abs().mean() + (g["ba"](real_a) - real_a).abs().mean()
        loss = loss + self.lambda_cycle * self.lambda_identity * identity
        return loss, self.logs(g_loss=adversarial, cycle=0.5 * (cycle_a + cycle_b), identity=0.5 * identity)

    @classmethod
    def logged(cls, cfg: Mapping) -> set[str]:
        """critic_loss's names per critic (train/d_loss_a, ...) and their sum, generator_loss's, and the
        translation grids' val/cycle* (callbacks.translations)."""
        per_critic = declared(cls.LOGS, cfg, Net.CRITIC) | {f"train/{name}" for name in penalties(cfg)}
        names = super().logged(cfg) - per_critic | {f"{k}_{d}" for k in per_critic for d in "ab"}
        names.add("train/d_loss")  # the two critics' sum
        if "translations" in (cfg.get("callbacks") or {}):
            names |= {"val/cycle", "val/cycle_a", "val/cycle_b"}
        return names

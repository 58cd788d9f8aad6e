"""ADA (Karras, Aittala, Hellsten, Laine, Lehtinen & Aila 2020, "Training Generative Adversarial Networks with
Limited Data"): augment every critic input with probability p, p steered so that D does not overfit.

Followed: NVlabs/stylegan2-ada-pytorch, training/training_loop.py (the heuristic) and training/augment.py (the
pipeline, pipe.py here). The heuristic: D's logits on the augmented real batches are collected (the sign of each,
loss.py's 'Loss/signs/real'); after every `interval` (ada_interval=4) steps, r_t = their mean over those steps and
over all ranks (training_stats' all-reduce; here each step's sum is all-reduced) and

    p <- p + sign(r_t - target) * (batch * interval) / (kimg * 1000)

with `batch` the global batch: so p moves by 1 in `kimg` thousand real images (ada_kimg=500), target 0.6 (the
paper's default). Here a step is a critic step, the images are those the critic read, and p is clamped to
[0, 1] (the paper's range; the authors' code clamps at 0 only, and a p above 1 augments as p = 1). target=null
keeps p fixed (the authors' `--aug=fixaug --p=P`).

`pipe` chooses the transform groups of pipe.py: 'b' pixel blitting (x-flip, quarter turns, integer translation),
'c' colour (brightness, contrast, luma flip, hue, saturation); 'bc' (default) is the authors' 'bgc' without the
general geometric group 'g'.

The state (p, and the signs, logits and images counted since the last adjustment) goes into checkpoints, so a
resumed run goes on with the same p at the same point of its interval. p lives on the host: it is adjusted from
the host's step count, so a step with ADA is not captured in a CUDA graph (fast.py runs it eagerly).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..ranks import Ranks
from .base import Augment
from .pipe import apply_colour, blit, colour_matrix, draw_blit, draw_colour

GROUPS = "bc"


class ADA(Augment):
    not_capturable = "augment=ada adjusts p on the host every `interval` critic steps"

    def __init__(self, p: float = 0.0, target: float | None = 0.6, interval: int = 4, kimg: float = 500.0,
                 pipe: str = "bc"):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1] (the initial augmentation probability), got {p}")
        if target is not None and not 0 < target < 1:
            raise ValueError(f"target must be in (0, 1) (the paper's r_t target is 0.6), or null for a fixed p, "
                             f"got {target}")
        if interval < 1:
            raise ValueError(f"interval must be >= 1 (critic steps between adjustments of p, e.g. 4), got {interval}")
        if not kimg > 0:
            raise ValueError(f"kimg must be > 0 (thousands of real images for p to move by 1, e.g. 500), got {kimg}")
        if not pipe or any(g not in GROUPS for g in pipe) or len(set(pipe)) != len(pipe):
            raise ValueError(f"pipe must be transform groups from {GROUPS!r} ('b' pixel blitting, 'c' colour), e.g. "
                             f"pipe=bc, got {pipe!r}")
        self.p, self.target = float(p), None if target is None else float(target)
        self.interval, self.kimg, self.pipe = int(interval), float(kimg), str(pipe)
        self.signs: Tensor | float = 0.0  # sum of sign(D(x_real)) since the last adjustment (a tensor on the device)
        self.count = 0  # logits summed into `signs` (all ranks)
        self.images = 0  # real images the critic read since the last adjustment (all ranks)

    @property
    def reads_logit_sign(self) -> bool:
        return self.target is not None

    def check(self, shape):
        if "c" in self.pipe and shape[0] not in (1, 3):
            return f"pipe 'c' transforms grey or RGB images (1 or 3 channels), got {shape[0]}: use augment.pipe=b"
        if "b" in self.pipe and shape[1] != shape[2]:
            return f"pipe 'b' turns images by quarter turns, which needs square images, got {shape[1]}x{shape[2]}"
        return None

    def __call__(self, x: Tensor, ranks: Ranks = Ranks()) -> Tensor:
        if self.p == 0:  # every transform off: the identity, nothing drawn
            return x
        n = x.shape[0]
        if "b" in self.pipe:
            x = blit(x, *draw_blit(n, x.shape[-1], self.p, ranks, x.device))
        if "c" in self.pipe:
            x = apply_colour(x, colour_matrix(*draw_colour(n, x.shape[1], self.p, ranks, x.device)))
        return x

    def observe(self, real_logits: Tensor, n: int, step: int, ranks: Ranks = Ranks()) -> None:
        """Collect critic step `step`'s real logits (n images on this rank); after every `interval`-th step adjust p.
        Under DDP each step's sum of signs is all-reduced at once: every rank then holds the global sums,
        so the ranks agree on p and a checkpoint (rank 0's) holds what every rank has."""
        if self.target is None:
            return
        signs = real_logits.detach().float().sign().sum()  # (), on the device: no host sync per step
        if ranks.world > 1:
            torch.distributed.all_reduce(signs)
        self.signs = self.signs + signs
        self.count += real_logits.numel() * ranks.world
        self.images += n * ranks.world
        if (step + 1) % self.interval == 0:
            self.adjust()

    def adjust(self) -> None:
        """p <- clamp(p + sign(r_t - target) * images / (kimg * 1000), 0, 1), r_t = mean sign since the last one."""
        if self.count > 0:
            r_t = float(self.signs) / self.count  # a host sync every `interval` steps
            step = (r_t > self.target) - (r_t < self.target)  # np.sign(r_t - target)
            self.p = min(1.0, max(0.0, self.p + step * self.images / (self.kimg * 1000)))
        self.signs, self.count, self.images = 0.0, 0, 0

    def r_t(self) -> float | None:
        """The mean sign of D(x_real) since the last adjustment, over all ranks (None before any logit)."""
        return float(self.signs) / self.count if self.count else None

    def logs(self) -> dict[str, float]:
        return {"train/ada_p": self.p}

    @classmethod
    def logged(cls, node: Mapping) -> set[str]:
        return {"train/ada_p"}

    def state_dict(self) -> dict:
        return {"p": self.p, "signs": float(self.signs), "count": self.count, "images": self.images}

    def load_state_dict(self, state: Mapping) -> None:
        self.p = float(state.get("p", self.p))
        self.signs, self.count = float(state.get("signs", 0.0)), int(state.get("count", 0))
        self.images = int(state.get("images", 0))

"""Random draws of a training step under DDP.

Every rank draws the randomness of the whole global batch (world x B rows: latents, class codes, interpolation
weights, instance noise) from the same random stream and keeps its own block of B rows. So the ranks train on
different fakes, as one process drawing world x B and splitting them would; every rank consumes its stream in step
with rank 0 (the checkpoint still saves every rank's RNG state, callbacks/run_state.py, so a rank that draws
something of its own also resumes exactly); and a run on N devices with batch B computes what one device computes with batch N x B (tests/test_ddp.py). The data
modules lay their batches out the same way (data/base.py: batch k of rank r is block r of global batch k).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Ranks(NamedTuple):
    rank: int = 0  # this process's global rank
    world: int = 1  # processes in the run (devices x nodes)

    def own(self, x: Tensor) -> Tensor:
        """This rank's block (n, ...) of a global draw x (world * n, ...)."""
        n = x.shape[0] // self.world
        return x[self.rank * n:(self.rank + 1) * n]

    def randn(self, n: int, *shape: int, **kw) -> Tensor:
        return self.own(torch.randn(n * self.world, *shape, **kw))  # (n, *shape)

    def rand(self, n: int, *shape: int, **kw) -> Tensor:
        return self.own(torch.rand(n * self.world, *shape, **kw))  # (n, *shape)

    def randint(self, high: int, n: int, **kw) -> Tensor:
        return self.own(torch.randint(high, (n * self.world,), **kw))  # (n,)

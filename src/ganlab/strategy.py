"""DDP for alternating GAN steps (`trainer.devices=N`, `trainer.num_nodes=M`).

Lightning's DDP wraps the whole LightningModule in DistributedDataParallel, which expects every parameter to
receive a gradient in every backward: a critic step leaves G without one and a generator step leaves D without
one (toggled off), so it stops with "parameters that were not used in producing the loss" - and
find_unused_parameters=True costs a graph traversal per step. ganlab keeps Lightning's process launch, process
group, device placement and collectives, but not the wrapper: every rank starts from rank 0's weights and
buffers (`broadcast_from_rank0`), and before each optimizer step the module averages the gradients of the net
about to step, and the loss, over the ranks in one all-reduce of one flat buffer (steps/rank_average.py, called
by module.GANModule._step; StyleGAN2 does the same). Gradient penalties need nothing more: their double backward
happens inside each rank's loss.
The random draws of a step and the data batches are blocks of global draws (ranks.py, data/base.py), so N
ranks with batch B compute what one device computes with batch N x B (tests/test_ddp.py).

BatchNorm statistics stay per rank (per-device batch B); `trainer.sync_batchnorm=true` syncs them (CUDA only,
torch's SyncBatchNorm). Spectral norm's power iteration runs on identical weights on every rank, so its u, v
stay identical without a broadcast.
"""
from __future__ import annotations

import torch
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import DictConfig
from torch import nn

from .config import ConfigError


class AlternatingDDP(DDPStrategy):
    def configure_ddp(self) -> None:
        broadcast_from_rank0(self.model)  # a resumed run loads its checkpoint after this, on every rank


def broadcast_from_rank0(module: nn.Module) -> None:
    """Rank 0's parameters and buffers into every rank's module, in place (what DDP's wrapper does when built),
    with public torch.distributed collectives: one broadcast per tensor, in the module's order, once per run."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            torch.distributed.broadcast(t.detach(), src=0)


def world_size(trainer_cfg: DictConfig) -> int:
    """Processes the Trainer's devices x num_nodes will run (devices: a count, a list, or "auto" / -1)."""
    devices, accelerator = trainer_cfg.get("devices", 1), str(trainer_cfg.get("accelerator", "auto"))
    if isinstance(devices, int) and devices > 0:
        n = devices
    elif isinstance(devices, str) and devices.strip().isdigit():
        n = int(devices)
    elif not isinstance(devices, (int, str)):  # a list of device indices
        n = len(devices)
    else:  # "auto" or -1: every GPU when one is used, else one process
        n = torch.cuda.device_count() if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else 1
    return max(n, 1) * int(trainer_cfg.get("num_nodes", 1))


def strategy_for(trainer_cfg: DictConfig):
    """`trainer.strategy`: auto (one device, or AlternatingDDP for several) | ddp (AlternatingDDP). Others are
    refused: their wrappers expect every parameter in every backward, which alternating steps never give."""
    name = trainer_cfg.get("strategy", "auto")
    if name == "auto" and world_size(trainer_cfg) == 1:
        return "auto"
    if name in ("auto", "ddp"):
        return AlternatingDDP()
    raise ConfigError(f"trainer.strategy={name}: ganlab steps the critic and the generator in turn, which DDP's "
                      f"wrapper (and FSDP, DeepSpeed) cannot follow; use trainer.strategy=ddp (or auto), ganlab's "
                      f"DDP that averages each net's gradients itself (see src/ganlab/strategy.py)")

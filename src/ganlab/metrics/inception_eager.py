"""The FID Inception network (metrics/features.py) rebuilt as eager PyTorch from its TorchScript file, for speed:
each of its 94 `Conv2dLayer`s (convolution, batch norm without scale, ReLU) becomes one convolution whose weights
and bias hold the batch norm, followed by an in-place ReLU, and the whole runs on channels-last tensors. The file's
own graph casts every weight to the input's dtype at each call and normalises, adds and rectifies in passes of their
own, which keeps torch.jit.freeze / optimize_for_inference from fusing anything; this port embeds ~1.75x more
images/s on two CPU cores (`make bench inception`).

Nothing is re-typed by hand: the blocks, their order and the weights are read from the file's modules (their
`original_name`); pooling layers are the file's own modules, called as they are. Folding the batch norm changes the
rounding only: tests/test_metrics.py pins the features to the file's forward to 1e-5 of each image's largest.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EPS = 1e-3  # the file's batch_norm(..., momentum 0.1, eps 0.001)
FEATURES = 2048


class FoldedConv(nn.Module):
    """relu(batch_norm(conv2d(x, w), mean, var, beta)) as relu(conv2d(x, w * s, beta - mean * s)), s = (var + eps)^-1/2."""

    def __init__(self, layer: torch.jit.ScriptModule):
        super().__init__()
        scale = (layer.var + BN_EPS).rsqrt()  # (C_out,)
        self.register_buffer("weight", layer.weight * scale[:, None, None, None])  # (C_out, C_in, kh, kw)
        self.register_buffer("bias", layer.beta - layer.mean * scale)  # (C_out,)
        pad = layer.padding
        self.stride, self.padding = layer.stride, tuple(pad) if isinstance(pad, (list, tuple)) else (pad, pad)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(F.conv2d(x, self.weight, self.bias, self.stride, self.padding), inplace=True)


class Chain(nn.Module):
    """A Sequential of the file: its children one after the other."""

    def __init__(self, module: torch.jit.ScriptModule):
        super().__init__()
        self.parts = nn.ModuleList(port(child) for _, child in module.named_children())

    def forward(self, x: Tensor) -> Tensor:
        for part in self.parts:
            x = part(x)
        return x


class Branches(Chain):
    """InceptionA-D: every child applied to the block's input, outputs concatenated along channels in order."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([part(x) for part in self.parts], 1)


class ExpandedBranches(nn.Module):
    """InceptionE: two towers split into a 1x3 and a 3x1 convolution each, as the file's forward wires them."""

    def __init__(self, module: torch.jit.ScriptModule):
        super().__init__()
        self.parts = nn.ModuleDict({name: port(child) for name, child in module.named_children()})

    def forward(self, x: Tensor) -> Tensor:
        p = self.parts
        a = p["tower_conv"](x)
        b = p["tower_1_conv_1"](p["tower_1_conv"](x))
        return torch.cat([p["conv"](x), p["tower_mixed_conv"](a), p["tower_mixed_conv_1"](a), p["tower_1_mixed_conv"](b),
                          p["tower_1_mixed_conv_1"](b), p["tower_2_conv"](p["tower_2_pool"](x))], 1)


PORTS = {"Conv2dLayer": FoldedConv, "Sequential": Chain, "InceptionA": Branches, "InceptionB": Branches,
         "InceptionC": Branches, "InceptionD": Branches, "InceptionE": ExpandedBranches}
AS_IS = ("MaxPool2d", "AvgPool2d")  # no weights: the file's module runs as it is


def port(module: torch.jit.ScriptModule) -> nn.Module:
    kind = module.original_name
    if kind in AS_IS:
        return module
    if kind not in PORTS:
        raise ValueError(f"the Inception file holds a {kind} module, which ganlab cannot rebuild")
    return PORTS[kind](module)


class EagerInception(nn.Module):
    """(N, 3, 299, 299) float32 in [-1, 1) -> (N, 2048) pool features, as the TorchScript file computes them."""

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.layers = port(scripted.net.layers)

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # (N, 3, 299, 299), channels innermost
        return self.layers(x).reshape(-1, FEATURES)  # (N, 2048, 1, 1) -> (N, 2048)

"""Pure nn.Modules, one architecture per file.

Contract:  G(z, y=None) -> x  with `G.z_dim` the latent size;  D(x, y=None) -> dict(logits=(B,), features=(B, F)).
"""

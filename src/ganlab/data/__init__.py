"""LightningDataModules. Batches are `(x, y)`: x (B, *shape) on the training device, y (B,) labels or None."""

"""Sample-quality metrics, one file per family; `callback.py` computes them during training."""

"""What a checkpoint keeps of the loop beside the nets and optimizers (GANModule.on_save_checkpoint /
on_load_checkpoint): the step counters, the step policies' counters, the regularizers' and the augmentation's
state, the training time and the values logged since the last row, so a resumed run continues exactly."""
from __future__ import annotations


def save_loop_state(m, checkpoint: dict) -> None:
    checkpoint["ganlab_steps"] = {"d_steps": m.d_steps, "g_steps": m.g_steps}
    checkpoint["ganlab_skips"] = {**m.nonfinite.state_dict(), **m.backoff.state_dict()}
    checkpoint["ganlab_regularizers"] = {name: reg.state_dict() for name, reg in m.regularizers.items()}
    checkpoint["ganlab_time"] = m.clock.state_dict()
    if m.augment is not None:
        checkpoint["ganlab_augment"] = m.augment.state_dict()  # ADA's p and its counts since the last change
    checkpoint["ganlab_row"] = m.row.state_dict()  # (the fast executor keeps its sums on the device: not saved)
    if m.executor is not None:
        m.executor.on_save_checkpoint(checkpoint)


def load_loop_state(m, checkpoint: dict) -> None:
    m.d_steps = checkpoint["ganlab_steps"]["d_steps"]
    m.g_steps = checkpoint["ganlab_steps"]["g_steps"]
    skips = checkpoint.get("ganlab_skips", {})  # older checkpoints: none, or no "overflows"; counted from 0
    m.nonfinite.load_state_dict(skips)
    m.backoff.load_state_dict(skips)
    if "ganlab_time" in checkpoint:  # older checkpoints: the time restarts at 0
        m.clock.load_state_dict(checkpoint["ganlab_time"])
    for name, state in checkpoint.get("ganlab_regularizers", {}).items():
        if name in m.regularizers:
            m.regularizers[name].load_state_dict(state)
    if m.augment is not None:
        m.augment.load_state_dict(checkpoint.get("ganlab_augment", {}))
    m.row.load_state_dict(checkpoint.get("ganlab_row", {}), m.device)

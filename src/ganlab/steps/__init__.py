"""The policies of one eager optimizer step (module.GANModule._step), one concept per module:

- nonfinite.NonFiniteSteps: what a non-finite step does (model.on_nonfinite stop | skip, model.max_skips).
- loss_scale.LossScaleBackoff: fp16's loss-scale overflows, dropped and backed off before they count as non-finite.
- rank_average.average_over_ranks: DDP's average of one net's gradients and the loss over the ranks.
"""

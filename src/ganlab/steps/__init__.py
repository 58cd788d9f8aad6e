"""How one optimizer step runs (GANModule.critic_step / generator_step define it), one concept per module:

- eager.EagerSteps: the executor that runs each step as it comes and checks it on the host (fast.py has the other).
- nonfinite.NonFiniteSteps: what a non-finite step does (model.on_nonfinite stop | skip, model.max_skips).
- loss_scale.LossScaleBackoff: fp16's loss-scale overflows, dropped and backed off before they count as non-finite.
- rank_average.average_over_ranks: DDP's average of one net's gradients and the loss over the ranks.
- row.Row: the values logged since the last row.
- fakes.Fakes: where a step's fakes come from: drawn for each step, or the critic step's for G's (model.reuse_fakes).
"""

"""ganlab: a GAN experiment platform on Lightning + Hydra."""

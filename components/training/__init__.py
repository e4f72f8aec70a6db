"""What every trainer shares: the optimisation loop (checkpoints, resume, DDP) and the step sampler."""

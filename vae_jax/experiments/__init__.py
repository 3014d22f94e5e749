"""Sweeps: many runs of one config, locally or as a SLURM array, and what gathers them."""

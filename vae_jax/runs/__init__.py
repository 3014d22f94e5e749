"""A run's directory and what reads and writes it: the workdir and its lock, checkpoints, metrics writers,
signals, damaged-file handling, the user's cache, and `load_run`."""

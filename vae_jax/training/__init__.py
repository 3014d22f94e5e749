"""Training: the setup and loop of a run, the pure train step, its objectives and optimizer, and how
steps reach the device (feeds, dispatch, the device mesh)."""

"""Pictures of a run: sample grids, reconstructions, interpolations, traversals, curves."""

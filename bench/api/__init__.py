"""The plugin contract: the ``SteeringMethod`` a plugin subclasses, the honesty pairs (and their
continuations) every method learns from, and the pieces several methods share (residual vectors, the
supervised baselines' options and data, parameter counts)."""

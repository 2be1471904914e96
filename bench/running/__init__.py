"""Running: a benchmark run (one budget or a frontier's ladder) and a tune, with the checks made before
any work, the cached fits, the cost estimate and the provenance each run records."""

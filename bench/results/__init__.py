"""Results: statistics, tables, plots and indexes rebuilt from a run's stored rows alone (no model)."""

"""Evaluation: DailyDilemmas and its dev/test split, and everything measured on a steered model (Yes/No
log-odds, matched strength, sign calibration, control items, the format probe, examples)."""

"""Metric groups read from the evaluation passes (`evaluation/passes.py`): text (generations),
likelihood, membership inference and forget quality. None runs a model except where a metric
needs scores no pass holds (the reference attack's reference model, truth ratios)."""

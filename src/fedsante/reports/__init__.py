"""Metrics, reports and model cards."""

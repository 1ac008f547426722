"""Data: the study schema (study.py), dataset sources (sources.py), mappings (mapping.py), cohort
compilation (cohort.py) and the bundled datasets and studies (bundled.py, heart.py).

Import from the modules themselves: this package imports nothing, so that reading a study does not load DuckDB.
"""

"""Names of what a run's result holds per hospital (read by the reports, written by an algorithm's plan)."""

STATS, SUBGROUPS, IMPORTANCE = "stats", "subgroups", "importance"
"""The evaluation statistics of a hospital, the subgroups' statistics, the permutation importance."""

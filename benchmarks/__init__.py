"""Measurements of textenv: the performance suite (``python -m benchmarks.run``) and the reward-model study.

Results, with machine, date, versions and number of runs, are recorded in ``BENCHMARKS.md``. The tests only check
that ``python -m benchmarks.run --quick`` runs and writes its table and JSON; they never time anything.
"""

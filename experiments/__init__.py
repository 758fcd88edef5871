"""Everything that runs outside a graph: features from datasets (and their cache), gain
calibration, probes, head-training runs, split sweeps and their statistics, ideas, the
baselines comparison, typed results with their Markdown and JSON, and the demo's model.

Imports go one way: ``stream`` <- ``nodes`` <- ``experiments`` <- ``launch``.  This package
imports nothing at import time, so ``rram_lsm.experiments.config`` stays light for the
command line.
"""

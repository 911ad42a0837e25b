"""The replay engine: cohort book, margin rules, liquidation, waterfall, shared fund (docs/MODEL.md).

Hot loops live in ``kernels.py`` (numba, arrays only); ``replay.py`` orchestrates bars on one clock.
"""

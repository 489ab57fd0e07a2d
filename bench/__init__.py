"""Benchmarks: flowengine measured against the bare minimum the platform allows.

Every measurement is a ratio against a baseline measured in the same run on the same machine,
so the ratios hold on noisy shared machines where absolute figures swing by +-30%.
Run ``python -m bench`` (a few minutes) or ``python -m bench --quick`` (about two minutes) from
the repository root; see BENCHMARKS.md for the latest table.
"""

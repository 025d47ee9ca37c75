"""Benchmarks: goals from the issues, measured side by side with their baseline in one run."""

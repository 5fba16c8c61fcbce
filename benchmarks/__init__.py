"""Benchmarks and simulated experts: code that measures scrAiber, never imported by the product rooms."""

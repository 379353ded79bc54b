"""Scenario harness: generated faults run through the real pipeline, checked by invariants."""

"""Hypothesis profiles, chosen by $HYPOTHESIS_PROFILE: `dev` (default) or `ci` (200 examples)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Spark-backed properties take a second or more per example: no deadline, no speed checks.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

"""How many Hypothesis examples a costly property gets under the active profile."""

from __future__ import annotations

import os


def examples(*, dev: int, ci: int) -> int:
    """`dev` in the test session (the default profile), `ci` in `nox -s properties`."""
    return ci if os.environ.get("HYPOTHESIS_PROFILE", "dev") == "ci" else dev

"""`python -m pipeline.lakeflow run`: the SDP definitions through `spark-pipelines`, locally."""

from __future__ import annotations

import sys

from pipeline.lakeflow.local import main

sys.exit(main())

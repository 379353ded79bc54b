"""`python -m clickstream`: the same as the `clickstream` command."""

from clickstream.cli import main

raise SystemExit(main())

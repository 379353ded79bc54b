"""The `clickstream` command line: the top that composes the product (`pipeline`), its rules
(`contracts`) and the test-data producer (`scenarios`). Nothing below imports it."""

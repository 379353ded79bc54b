"""Storage: table names and paths, the Delta writers, the Delta log read in plain Python."""

"""Storage: table paths and counts, the Delta writers, the SCD merge, the Delta log read in
plain Python."""

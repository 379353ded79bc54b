"""The harness on any DLT / Lakeflow pipeline: its harness file, seeded records and faults."""

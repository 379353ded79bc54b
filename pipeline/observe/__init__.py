"""Observability: the event log, its history and the flows' lineage."""

"""Privacy operations: erasure, PII scans, landing scrubbing, key rotation and the key registry."""

"""The run: the one run sequence (`runner.run_pipeline`), its stages and streaming,
enforcement, run state, preflight checks and repairs, the writer lock, progress, the session
and its jars, cost counting, VACUUM and optimization."""

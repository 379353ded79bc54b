"""The runtime: the run sequence, its stages and streaming, enforcement, run state, writer lock,
preflight, progress, the session, cost counting."""

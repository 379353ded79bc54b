"""Users' own DLT / Lakeflow Python sources run locally: their source read (`source`), what
cannot run here refused before anything is written (`refusals`)."""

"""Users' own DLT / Lakeflow Python sources run locally: each source read (`source`), what
cannot run here refused before anything runs (`refusals`), then executed with the harness's
`dlt` module (`loader`), which records what it declares (`api`); Auto Loader's options read
as Databricks reads them (`autoloader`)."""

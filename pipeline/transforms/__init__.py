"""The pure transformations: bronze, silver, gold, SCD2, pseudonymization, expectations, schemas
(no Delta I/O, no streaming)."""

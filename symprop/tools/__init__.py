"""Tools around a generated module: check, train (locally or on Dask), predict, export; one module
per job (docs/architecture.md, "The tools")."""

"""Tools around a generated module: optimizers (:mod:`.solvers`) and the Dask engine (:mod:`.distributed`)."""

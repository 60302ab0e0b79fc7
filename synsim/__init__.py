"""synsim: receptor-level silent-synapse simulation (the NGAI model), cross-checked against Brian2.

Modules: params, kinetics, model (the step), simulate (the run loop), protocols, experiments (the
canonical experiments, defined once), rule (the per-presentation rule), io (the xarray/netCDF
schema), files (atomic writes), errors (bad input: one line), figures (drawing only), sweep
(parameter grids on Dask), crosscheck, demo.
"""

"""Metrics that compare samples with densities or with other samples. Import the submodules directly."""

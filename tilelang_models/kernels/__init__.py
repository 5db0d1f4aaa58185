"""Building-block kernels: cube GEMMs with writeback epilogues, vector norms/activations."""

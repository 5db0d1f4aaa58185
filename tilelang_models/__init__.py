"""Models and building-block kernels written in the mixtile language."""

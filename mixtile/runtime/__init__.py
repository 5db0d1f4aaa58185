"""The runtime: compile (with caches), run_jit, golden comparison, the pipeline."""

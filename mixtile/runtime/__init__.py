"""The runtime: the backend table (`backends`), compile with its caches (`compiler`),
argument checks (`args`), bound launchers (`launcher`), run_jit (`jit`), golden comparison
(`golden`), the pass pipelines (`pipeline`) and each backend's runner (`sim`, `gpu`,
`npu`)."""

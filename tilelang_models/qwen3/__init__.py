"""Qwen3 in mixtile: the decode layer (decode_layer.py), its kernels, configs, weights
loading, a paged KV cache helper and the torch reference used as the golden."""

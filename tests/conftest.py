import pytest
import torch


@pytest.fixture
def gen():
    """A fresh torch generator per test (seeded by pytest's random order is not needed)."""
    return torch.Generator().manual_seed(torch.seed() % (2**31))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Keep the disk compile cache of each test in its own folder."""
    import mixtile.runtime.compiler as c

    monkeypatch.setitem(c._DEFAULTS, "cache_dir", str(tmp_path / "cache"))
    c.clear_memory_cache()
    yield

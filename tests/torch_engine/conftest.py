"""Fixtures for the PyTorch engine tests: tiny HF/GGUF models and real PEFT adapters made on them."""
import pytest
from fixtures.tiny_adapters import tiny_adapters  # noqa: F401  (pytest fixture)
from fixtures.tiny_gguf import tiny_models  # noqa: F401  (pytest fixture)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))

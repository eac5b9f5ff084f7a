"""Fixtures for the merge tests: tiny models (tests/fixtures/tiny_gguf.py) and adapters made on them."""
from fixtures.tiny_adapters import tiny_adapters  # noqa: F401  (pytest fixture)
from fixtures.tiny_gguf import tiny_models  # noqa: F401  (pytest fixture)

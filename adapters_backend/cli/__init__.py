"""The `loradeck` command line (no Qt): `main(argv)` runs it."""
from .main import main

__all__ = ["main"]

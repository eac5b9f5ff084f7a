"""The user's adapter library (see library.py for the on-disk layout and crash-safety rules)."""
from .entry import LibraryEntry
from .library import Library, default_root, index_identity

__all__ = ["Library", "LibraryEntry", "default_root", "index_identity"]

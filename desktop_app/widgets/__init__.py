"""One view per file; widgets present, backend functions do the work."""

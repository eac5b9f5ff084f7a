"""Qt item models over the backend's lists (library, mix, conversations, Hub results, downloads)."""

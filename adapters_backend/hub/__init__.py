"""Hugging Face Hub: search, details before download, resumable downloads into the HF cache, installs.

Everything goes through huggingface_hub; see client.py for how settings and errors are handled,
reach.py for how being offline is found out in seconds, http.py for the requests LoRA Deck makes
itself (retried when a connection drops) and safe_names.py for the checks on names that become paths.
"""
from .auth import set_token, token_source
from .details import RepoDetails, gguf_files, pick_gguf, repo_details
from .download import download_files
from .downloaded import DownloadedModel, downloaded_models, remove_downloaded
from .gguf_models import suggested_model
from .install import adapter_files, download_adapter, install_from_hub, parse_hub_ref
from .search import SearchResult, iter_search, search

__all__ = ["DownloadedModel", "RepoDetails", "SearchResult", "adapter_files", "download_adapter", "download_files",
           "downloaded_models", "gguf_files", "install_from_hub", "iter_search", "parse_hub_ref", "pick_gguf",
           "remove_downloaded", "repo_details", "search", "set_token", "suggested_model", "token_source"]

"""Adapters → llama.cpp LoRA GGUF (exact), with a cache of converted files."""
from .to_gguf import ConvertResult, convert_to_gguf

__all__ = ["ConvertResult", "convert_to_gguf"]

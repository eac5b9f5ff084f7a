"""Bake adapters into base weights (GGUF or HF safetensors) and blend adapters into a new PEFT adapter."""

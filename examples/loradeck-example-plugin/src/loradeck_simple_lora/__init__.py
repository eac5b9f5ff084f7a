"""An example LoRA Deck format plugin: the "Simple LoRA" format.

This file holds only the manifest: plain data that LoRA Deck reads when it discovers plugins.
The reader module is named by "module:attr" strings and imported only when a file is checked.
A dict works as well as the dataclasses (and needs no import from LoRA Deck at discovery time).
"""

MANIFEST = {
    "name": "Simple LoRA (example plugin)",
    "description": "A folder with simple_lora.json and simple_lora.safetensors (down/up factors per module).",
    "formats": [
        {
            "id": "simple-lora",
            "name": "Simple LoRA",
            "sniff": "loradeck_simple_lora.reader:sniff",
            "read": "loradeck_simple_lora.reader:read",
            "description": "The example format from docs/writing-a-plugin.md.",
        }
    ],
}

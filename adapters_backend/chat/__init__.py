"""Chat helpers shared by the engines and the CLI: prompt templates and streamed reply text."""
from .reply_text import ReplyText
from .template import ChatTemplate, RenderedPrompt, template_from_metadata

__all__ = ["ChatTemplate", "RenderedPrompt", "ReplyText", "template_from_metadata"]

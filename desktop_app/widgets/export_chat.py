"""Chat → Export chat… (and the conversation list's menu): asks where, then writes the conversation
as Markdown (desktop_app.conversation_export). The file is written whole or not at all; a disk that
refuses it is said, naming the file."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from ..conversation_export import file_name, to_markdown


def export_chat(parent, conv, state) -> Path | None:
    """Ask for a file and write `conv` to it; the path written, or None (cancelled, failed, nothing to export)."""
    from adapters_backend.atomic import write_text_atomic

    if conv is None or not conv.messages:
        parent.status_message.emit("Nothing to export: the conversation has no messages yet")
        return None
    folder = Path(state.settings.get("chat/export_folder") or Path.home())
    path, _ = QFileDialog.getSaveFileName(parent, "Export chat", str(folder / file_name(conv)),
                                          "Markdown (*.md);;All files (*)")
    if not path:
        return None
    path = Path(path)
    try:
        write_text_atomic(path, to_markdown(conv))
    except OSError as exc:                      # WriteFailed names the file and why; any other OSError too
        state.errors.report(exc, "Export chat")
        return None
    state.settings.set("chat/export_folder", str(path.parent))
    parent.status_message.emit(f"Exported “{conv.title}” to {path}")
    return path

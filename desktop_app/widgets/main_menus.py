"""The main window's menus and shortcuts, and the Help menu's own small windows."""
from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence

from adapters_backend.errors import BackendError


def add_action(window, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
    act = QAction(text, window)
    if shortcut is not None:
        act.setShortcut(QKeySequence(shortcut))
    if tip:
        act.setStatusTip(tip)
    act.triggered.connect(slot)
    menu.addAction(act)
    return act


def build_menus(w) -> None:
    """File, Chat, View, Tools and Help for the main window `w` (sets w.stop_action, w.serve_action,
    w.format_action)."""
    mb = w.menuBar()
    m = mb.addMenu("&File")
    add_action(w, m, "Open &GGUF model…", w.model_picker.open_gguf, QKeySequence.StandardKey.Open,
               "Load a GGUF model file")
    add_action(w, m, "Open model &folder…", w.model_picker.open_folder, None,
               "Load a Hugging Face model folder with the PyTorch engine")
    add_action(w, m, "&Install adapter…", lambda: w.library.install_from_dialog(), "Ctrl+I",
               "Install an adapter folder, .zip, .safetensors or .gguf into the library")
    m.addSeparator()
    add_action(w, m, "Downloaded &models…", w.show_downloaded_models, None,
               "What the models downloaded from the Hub take on disk; remove the ones you no longer use")
    m.addSeparator()
    add_action(w, m, "&Quit", w.close, "Ctrl+Q")

    m = mb.addMenu("&Chat")
    add_action(w, m, "&New chat", w._new_chat, QKeySequence.StandardKey.New)
    add_action(w, m, "&Regenerate", w.chat.regenerate, "Ctrl+R")
    add_action(w, m, "Con&tinue answer", w.chat.continue_answer, "Ctrl+Shift+R",
               "Write more of the last answer when it was cut short (Max tokens, Stop)")
    w.stop_action = add_action(w, m, "&Stop", w._stop, "Esc")
    add_action(w, m, "&Copy last answer", w._copy_last, "Ctrl+Shift+C")
    add_action(w, m, "&Export chat…", w.chat.export_open, "Ctrl+Shift+E",
               "Save the open conversation as a Markdown file")
    add_action(w, m, "Focus &message box", w._focus_prompt, "Ctrl+L")
    add_action(w, m, "&Search chats", w._focus_search, QKeySequence.StandardKey.Find,
               "Find conversations by words in their titles and messages")

    m = mb.addMenu("&View")
    for i, name in enumerate(("Chat", "Compare", "Sweep", "Library", "Hub")):
        add_action(w, m, name, lambda _=False, i=i: w.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}")
    m.addSeparator()
    m.addAction(w.mixer_dock.toggleViewAction())
    w.mixer_dock.toggleViewAction().setShortcut(QKeySequence("Ctrl+Shift+A"))
    add_action(w, m, "Downloads", w._toggle_downloads, "Ctrl+Shift+D")
    m.addSeparator()
    w.format_action = add_action(w, m, "&Format answers", w.chat.set_format_answers, None,
                                 "Lay out the Markdown in answers (headings, lists, code); off: show it as written")
    w.format_action.setCheckable(True)
    w.format_action.setChecked(w.state.settings.format_answers)

    m = mb.addMenu("&Tools")
    add_action(w, m, "&Convert adapter…", w.show_convert, "Ctrl+Shift+K")
    add_action(w, m, "&Merge adapters…", w.show_merge, "Ctrl+Shift+M")
    w.serve_action = add_action(w, m, "Local &API server (OpenAI-compatible)", w._toggle_server, None,
                                "Let other programs use the model and adapters over HTTP on this machine")
    w.serve_action.setCheckable(True)
    m.addSeparator()
    add_action(w, m, "&Plugins…", w.show_plugins)
    add_action(w, m, "&Settings…", w.show_settings, "Ctrl+,")

    m = mb.addMenu("&Help")
    add_action(w, m, "Getting a &real model", lambda: show_getting_a_model(w))
    add_action(w, m, "Open &log folder", w.show_log_folder, None,
               "The log file: what went wrong, with details, for a bug report")
    add_action(w, m, "&About LoRA Deck", w._about)


def show_getting_a_model(parent) -> None:
    from PySide6.QtWidgets import QMessageBox  # only when shown
    QMessageBox.information(
        parent, "Getting a real model",
        "LoRA Deck runs GGUF models with llama.cpp.\n\n"
        "• Open the Hub tab, choose “Models”, search for a model (e.g. “Qwen2.5 0.5B Instruct GGUF”) and "
        "download one quantization file (Q4_K_M is a good start).\n"
        "• Or open a .gguf file you already have with File → Open GGUF model… (Ctrl+O), or drop it on the "
        "window.\n\nThen find adapters for it in the Hub tab: by default it lists adapters made for the "
        "loaded model.")


def show_about(parent):
    """The About box (non-blocking); returns it."""
    from PySide6.QtWidgets import QMessageBox  # only when shown
    box = QMessageBox(QMessageBox.Icon.Information, "About LoRA Deck",
                      f"LoRA Deck {app_version()}\n\nRun local LLMs with LoRA adapters: mix several, give each a "
                      "strength, switch them instantly.\n\nApache-2.0.", QMessageBox.StandardButton.Ok, parent)
    box.setAccessibleName("About LoRA Deck")
    from ..transient_dialogs import open_once
    return open_once(box)


def open_log_folder(state):
    """Show the log folder in the file manager (a job); an error dialog says where it is if none can."""
    from adapters_backend.paths import log_dir

    from ..file_manager import open_folder
    folder = str(log_dir())
    job = state.jobs.start(open_folder, folder)
    job.signals.result.connect(lambda problem: problem and state.errors.report(
        _FolderNotShown(f"The log folder could not be opened: {problem}. It is {folder}"), "Log folder"))
    return job


class _FolderNotShown(BackendError):
    """No file manager showed a folder: said as it is, not as a bug."""


def app_version() -> str:
    """The version of the installed distribution (pip, dev.py's editable install and the installers'
    bundled dist-info all carry it)."""
    from importlib import metadata
    try:
        return metadata.version("loradeck")
    except metadata.PackageNotFoundError:
        return "(version unknown: not installed)"

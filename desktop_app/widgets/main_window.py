"""The main window: model picker on top, chat / compare / sweep / library / Hub tabs, the adapter
mixer on the right, downloads at the bottom; menus with the usual shortcuts; drag and drop anywhere."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from ..plain_text import message_box, plain_label, plain_tip
from ..prewarm_scheduler import PrewarmScheduler
from ..transient_dialogs import open_once
from .adapter_mixer import AdapterMixer
from .chat_view import ChatView
from .main_menus import build_menus, open_log_folder, show_about
from .model_picker import ModelPicker

MIN_SIZE = (760, 540)
DEFAULT_SIZE = (1280, 820)


class MainWindow(QMainWindow):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self._painted = False
        self._start_pending = False
        self.state = state
        self.setWindowTitle("LoRA Deck")
        self.setObjectName("MainWindow")
        self.setMinimumSize(*MIN_SIZE)
        self.resize(*DEFAULT_SIZE)
        self.setAcceptDrops(True)
        self._activities = None
        self._drops = None
        self._serve = None                  # ServeAccess, made when the API server is first started
        self._serve_label = None
        self._serve_job = None

        # Top: model picker (a plain row above the tabs; a QToolBar costs start-up time and adds nothing).
        self.model_picker = ModelPicker(state)

        # Centre: tabs. Only the chat is built now; the others when first opened (fast start).
        self.chat = ChatView(state)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Views")
        self.tabs.setDocumentMode(True)
        self._lazy: dict[str, QWidget] = {}
        self.tabs.addTab(self.chat, "&Chat")
        for name, label in (("compare", "C&ompare"), ("sweep", "S&weep"), ("library", "&Library"), ("hub", "&Hub")):
            holder = QWidget()
            holder.setLayout(QVBoxLayout())
            holder.layout().setContentsMargins(0, 0, 0, 0)
            self._lazy[name] = holder
            self.tabs.addTab(holder, label)
        self.tabs.currentChanged.connect(self._on_tabs_current_changed)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.model_picker)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        # Right: mixer. Bottom: downloads (built when the first download or install starts).
        self.mixer = AdapterMixer(state)
        self.mixer_dock = self._dock("Adapters", "AdaptersDock", self.mixer, Qt.DockWidgetArea.RightDockWidgetArea)
        self._downloads_dock: QDockWidget | None = None

        # Status bar.
        self.status_label = plain_label()
        self.status_label.setAccessibleName("Generation statistics")
        self.statusBar().addPermanentWidget(self.status_label)
        self.chat.status_message.connect(self.status_label.setText)
        self.prewarm = PrewarmScheduler(state, self.chat.prewarm_messages, self)
        self.chat.conversation_settled.connect(self.prewarm.conversation_changed)
        self.prewarm.status_changed.connect(self._on_prewarm_status_changed)
        state.model_loading.connect(lambda label: self.statusBar().showMessage(f"Loading {label}…"))
        state.model_load_failed.connect(lambda label, _why: self.statusBar().showMessage(f"Could not load {label}", 8000))
        state.model_changed.connect(self._on_state_model_changed)
        state.adapter_installed.connect(self._on_adapter_installed)

        self.model_picker.hub_requested.connect(self.show_hub_models)
        build_menus(self)
        self._restore_geometry()


    def _on_prewarm_status_changed(self, text: str, timeout_ms: int) -> None:
        if text:
            self.statusBar().showMessage(text, timeout_ms)
        else:
            self.statusBar().clearMessage()

    # ------------------------------------------------------------------ views built on first use
    def _view(self, name: str):
        holder = self._lazy[name]
        if holder.layout().count():
            return holder.layout().itemAt(0).widget()
        if name == "compare":
            from .compare_view import CompareView
            view = CompareView(self.state)
        elif name == "sweep":
            from .sweep_view import SweepView
            view = SweepView(self.state)
        elif name == "library":
            from .library_view import LibraryView
            view = LibraryView(self.state)
            view.add_to_mix_requested.connect(self._on_library_add_to_mix)
        else:
            from .hub_browser import HubBrowser
            view = HubBrowser(self.state, self.activities)
        holder.layout().addWidget(view)
        self._claim_file_drops()
        return view

    def show_view(self, name: str):
        """Switch to a tab by name ("chat", "compare", "sweep", "library", "hub"); returns its view."""
        if name == "chat":
            self.tabs.setCurrentWidget(self.chat)
            return self.chat
        self.tabs.setCurrentWidget(self._lazy[name])
        return self._view(name)

    def _on_tabs_current_changed(self, index: int) -> None:
        for name, holder in self._lazy.items():
            if self.tabs.widget(index) is holder:
                self._view(name)

    @property
    def compare(self):
        return self._view("compare")

    @property
    def sweep(self):
        return self._view("sweep")

    @property
    def library(self):
        return self._view("library")

    @property
    def hub(self):
        return self._view("hub")

    @property
    def activities(self):
        """Installs and downloads (built on first use)."""
        if self._activities is None:
            from ..activity import ActivityListModel
            self._activities = ActivityListModel(self)
            self._activities.rowsInserted.connect(self._on_activity_started)
        return self._activities

    def _on_activity_started(self, _parent, first: int, _last: int) -> None:
        """Hub downloads (long, with Cancel and Resume) open the downloads panel; installs only say so in
        the status bar, so the panel does not squeeze the view the user is working in."""
        a = self._activities.activities()[first]
        if a.kind == "download":
            self.downloads_dock.show()
        else:
            self.statusBar().showMessage(f"{a.title}… (View → Downloads shows the progress)", 5000)

    @property
    def drops(self):
        if self._drops is None:
            from ..drop_install import DropInstaller
            self._drops = DropInstaller(self.state, self.activities, self)
        return self._drops

    @property
    def downloads_dock(self) -> QDockWidget:
        if self._downloads_dock is None:
            from .downloads_panel import DownloadsPanel
            self.downloads = DownloadsPanel(self.activities)
            self._downloads_dock = self._dock("Downloads", "DownloadsDock", self.downloads,
                                              Qt.DockWidgetArea.BottomDockWidgetArea)
            self._downloads_dock.hide()
            self.resizeDocks([self._downloads_dock], [150], Qt.Orientation.Vertical)
        return self._downloads_dock

    def _toggle_downloads(self) -> None:
        dock = self.downloads_dock
        dock.setVisible(not dock.isVisible())

    def _dock(self, title: str, name: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setAccessibleName(title)
        self.addDockWidget(area, dock)
        return dock

    def _new_chat(self) -> None:
        self.tabs.setCurrentWidget(self.chat)
        self.chat.new_chat()

    def _stop(self) -> None:
        self.state.cancel_generation()

    def _copy_last(self) -> None:
        from PySide6.QtGui import QGuiApplication

        from ..reasoning import answer_part
        text = answer_part(self.chat.last_reply_text())      # as the answer's Copy: without its reasoning
        if text:
            QGuiApplication.clipboard().setText(text)
            self.statusBar().showMessage("Answer copied", 2000)

    def _focus_prompt(self) -> None:
        self.tabs.setCurrentWidget(self.chat)
        self.chat.prompt.setFocus()

    def _focus_search(self) -> None:
        self.tabs.setCurrentWidget(self.chat)
        self.chat.sidebar.search.setFocus()
        self.chat.sidebar.search.selectAll()

    def show_hub_models(self) -> None:
        self.show_view("hub").show_models()

    def _on_library_add_to_mix(self, adapter_id: str) -> None:
        from .adapter_mixer import warn_cannot_add
        if not self.state.add_to_mix(adapter_id):
            self.misfit_box = warn_cannot_add(self, self.state, adapter_id)

    def _on_adapter_installed(self, entry, verdict) -> None:
        """Say how an install ended: a warning when the new adapter does not fit the loaded model."""
        if verdict is None or verdict.usable:
            note = f" — {verdict.reason}" if verdict is not None and verdict.status == "partial" else ""
            self.statusBar().showMessage(f"Installed “{entry.name}”{note}", 8000)
            return
        from PySide6.QtWidgets import QMessageBox  # only when shown
        reason = verdict.reason.removeprefix("incompatible: ")
        self.statusBar().showMessage(f"Installed “{entry.name}”, but it does not fit {self.state.model_label()}", 8000)
        box = message_box(QMessageBox.Icon.Warning, "Installed, but it does not fit",
                          f"“{entry.name}” is now in the library, but it does not fit the loaded model "
                          f"({self.state.model_label()}): {reason}\n\nLoad a model it was made for to use it.",
                          QMessageBox.StandardButton.Ok, self)
        box.setAccessibleName("Installed adapter does not fit")
        self.install_warning = open_once(box)

    def _on_state_model_changed(self) -> None:
        m = self.state.model
        self.setWindowTitle(f"LoRA Deck — {m.label}" if m else "LoRA Deck")
        where = f", {m.info['device']}" if m and m.info.get("device") else ""
        self.statusBar().showMessage(f"{m.label} loaded ({m.engine}{where})" if m else "No model loaded", 5000)

    # -- dialogs (imported when first opened: start-up stays light) --
    def show_convert(self) -> None:
        from .convert_dialog import ConvertDialog
        open_once(ConvertDialog(self.state, self))

    def show_merge(self) -> None:
        from .merge_dialog import MergeDialog
        open_once(MergeDialog(self.state, self))

    def _toggle_server(self, checked: bool) -> None:
        """Start or stop `loradeck serve` in the background (see desktop_app/serve_access.py)."""
        if self._serve is None:
            from ..serve_access import ServeAccess  # the server stack loads on first use
            self._serve = ServeAccess()
        self.serve_action.setEnabled(False)
        # Kept referenced, with slots on this window: queued to the GUI thread, never lost with the job.
        if checked:
            self._serve_job = self.state.jobs.start(self._serve.start, self.state.model,
                                                    allow_origins=self.state.settings.server_origins,
                                                    engine_options=self.state.settings.engine_options())
        else:
            self._serve_job = self.state.jobs.start(self._serve.stop)
        signals = self._serve_job.signals
        signals.result.connect(self._server_started if checked else self._server_stopped)
        signals.error.connect(self._server_failed)
        signals.finished.connect(self._server_job_done)

    def _server_job_done(self) -> None:
        self.serve_action.setEnabled(True)
        self._serve_job = None

    def _server_failed(self, exc) -> None:
        self.serve_action.setChecked(False)
        self.state.errors.report(exc, "Starting the local API server")

    def _server_started(self, info: dict) -> None:
        url = f"{info['url']}/v1"
        self.serve_action.setText(f"Local &API server: {url}")
        if self._serve_label is None:       # stays in the status bar while the server runs
            self._serve_label = plain_label()
            self._serve_label.setAccessibleName("Local API server address")
            self._serve_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.statusBar().addPermanentWidget(self._serve_label)
        self._serve_label.setText(f"API: {url}")
        self._serve_label.setToolTip(plain_tip(
            f"OpenAI-compatible server for {info['model']}: base URL {url}. Pick adapters per request with "
            "\"adapters\": [{\"name\": …, \"strength\": 0.8}] or <lora:name:0.8> in the prompt. "
            + info.get("note", "")))
        self._serve_label.show()
        self.statusBar().showMessage(f"Local API server running at {url}. {info.get('note', '')}".strip(), 10000)

    def _server_stopped(self, _result=None) -> None:
        self.serve_action.setText("Local &API server (OpenAI-compatible)")
        if self._serve_label is not None:
            self._serve_label.hide()
        self.statusBar().showMessage("Local API server stopped", 3000)

    def show_downloaded_models(self) -> None:
        from .downloaded_models_dialog import DownloadedModelsDialog
        self.downloaded_models_dialog = open_once(DownloadedModelsDialog(self.state, self))
        self.downloaded_models_dialog.removed.connect(self.model_picker.refresh)

    def show_plugins(self) -> None:
        from .plugins_dialog import PluginsDialog
        self.plugins_dialog = open_once(PluginsDialog(self.state, self))

    def show_settings(self) -> None:
        from .settings_dialog import SettingsDialog
        self.settings_dialog = open_once(SettingsDialog(self.state, self))

    def _about(self) -> None:
        self.about_box = show_about(self)

    def show_log_folder(self) -> None:
        self._log_folder_job = open_log_folder(self.state)

    # ------------------------------------------------------------------ drag and drop
    # Files dropped anywhere in the window are ours, even over a text box (which would otherwise
    # paste the file's path as text): we filter the events of every child that accepts drops.
    def _claim_file_drops(self) -> None:
        for w in self.findChildren(QWidget):
            if w.acceptDrops() and not w.property("_loradeck_drop_filter"):
                w.installEventFilter(self)
                w.setProperty("_loradeck_drop_filter", True)

    @staticmethod
    def _dropped_files(event) -> list[Path]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop) and \
                isinstance(obj, QWidget) and obj.window() is self and obj is not self:
            if self._dropped_files(event):
                {QEvent.Type.DragEnter: self.dragEnterEvent, QEvent.Type.DragMove: self.dragMoveEvent,
                 QEvent.Type.Drop: self.dropEvent}[kind](event)
                return True
        return super().eventFilter(obj, event)

    def dragEnterEvent(self, event) -> None:
        if self._dropped_files(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = self._dropped_files(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.drops.handle_paths(paths)

    def take_files(self, paths: list) -> None:
        """Files handed over by a second start or by macOS: come to the front, then take them as a drop."""
        self.setWindowState((self.windowState() & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive)
        self.show()
        self.raise_()
        self.activateWindow()
        if paths:
            self.drops.handle_paths([Path(p) for p in paths])

    # ------------------------------------------------------------------ geometry and closing
    def _restore_geometry(self) -> None:
        s = self.state.settings
        geo = s.get("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        st = s.get("window/state")
        if isinstance(st, QByteArray) and not st.isEmpty():
            self.restoreState(st)
        tab = s.get("window/tab", 0, int)
        if 0 <= tab < self.tabs.count():
            self.tabs.setCurrentIndex(tab)

    def save_geometry(self) -> None:
        s = self.state.settings
        s.set("window/geometry", self.saveGeometry())
        s.set("window/state", self.saveState())
        s.set("window/tab", self.tabs.currentIndex())

    def closeEvent(self, event) -> None:
        self.chat.before_quit()
        if not self._may_quit_with_unsaved():
            event.ignore()
            return
        self.save_geometry()
        if self._serve is not None:
            self._serve.stop()
        self.state.shutdown()
        event.accept()

    def _may_quit_with_unsaved(self) -> bool:
        """Conversations a full disk kept from being saved are written once more; when they still
        cannot be, the user chooses: stay (and free some space) or quit without them."""
        from PySide6.QtWidgets import QApplication, QMessageBox

        from ..plain_text import message_box
        problem = self.state.conversations.save_unsaved()
        if problem is None or not self.state.errors.show_dialogs \
                or QApplication.instance().property("loradeck_ending"):
            return True
        n = len(self.state.conversations.unsaved())
        box = message_box(QMessageBox.Icon.Warning, "Quit without saving?",
                          f"{n} conversation{'s' if n != 1 else ''} could not be saved: {problem}\n\n"
                          "Cancel keeps LoRA Deck open, to quit again once that is fixed; or quit without them.",
                          QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, self)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAccessibleName("Unsaved conversations")
        return box.exec() == QMessageBox.StandardButton.Discard

    def start(self) -> None:
        """Load library, conversations and the model once the window has been painted (fast start)."""
        self.state.conversations.modelReset.connect(self.chat.select_after_reset)
        if self._painted:
            QTimer.singleShot(0, self._after_first_paint)
        else:
            self._start_pending = True

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.WindowActivate:
            self.state.library_changed_elsewhere()      # back from a terminal that installed or removed one
        if not self._painted and event.type() == QEvent.Type.Paint:
            self._painted = True
            if self._start_pending:
                QTimer.singleShot(0, self._after_first_paint)
        return super().event(event)

    def _after_first_paint(self) -> None:
        self._claim_file_drops()
        if self.state.settings.theme == "system":
            # Asking the platform for its colour scheme takes ~20 ms (a D-Bus call on Linux): not
            # before the window is on screen. Qt's own palette already follows most systems.
            from PySide6.QtWidgets import QApplication

            from .. import theme
            theme.apply(QApplication.instance(), "system")
        self.state.start()

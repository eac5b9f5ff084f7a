"""Base for dialogs that run one long backend job: progress bar, Cancel that cancels the job, the
result or the error shown in place (the dialog stays usable)."""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLineEdit, QProgressBar, QPushButton

from adapters_backend.errors import JobCancelled

from ..plain_text import plain_label


class JobDialog(QDialog):
    def __init__(self, state, title: str, run_label: str, parent=None):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle(title)
        self.job = None
        self.progress = QProgressBar()
        self.progress.setAccessibleName(f"{title} progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.hide()
        self.status = plain_label()
        self.status.setWordWrap(True)
        self.status.setAccessibleName(f"{title} status")
        self.buttons = QDialogButtonBox()
        self.run_button = QPushButton(run_label)
        self.run_button.setAccessibleName(run_label)
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel")
        self.close_button = QPushButton("Close")
        self.buttons.addButton(self.run_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.close_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.run_button.clicked.connect(self._on_run_clicked)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)
        self.cancel_button.setEnabled(False)

    def output_row(self, caption: str, filters: str) -> QHBoxLayout:
        """The "Output [path] [Save as…]" row; the path is `self.output`."""
        self.output = QLineEdit()
        self.output.setAccessibleName("Output file")
        browse = QPushButton("Save as…")
        browse.clicked.connect(lambda: self._browse_output(caption, filters))
        row = QHBoxLayout()
        row.addWidget(self.output, 1)
        row.addWidget(browse)
        return row

    def _browse_output(self, caption: str, filters: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, caption, self.output.text(), filters)
        if path:
            self.output.setText(path)

    # subclasses: return (fn, args) or raise ValueError with a message for the user
    def job_call(self):
        raise NotImplementedError

    def on_result(self, result) -> str:
        return "Done."

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def _on_run_clicked(self) -> None:
        if self.running:
            return
        try:
            fn, args = self.job_call()
        except ValueError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText("Working…")
        self.progress.setRange(0, 0)
        self.progress.show()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.job = self.state.jobs.start(fn, *args)
        self.job.signals.progress.connect(self._on_job_progress)
        self.job.signals.result.connect(self._on_job_result)
        self.job.signals.error.connect(self._on_job_error)
        self.job.signals.finished.connect(self._on_job_finished)

    def cancel(self) -> None:
        if self.running:
            self.job.cancel()
            self.status.setText("Cancelling…")

    def _on_job_progress(self, done: float, total: float, msg: str) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
        if msg:
            self.status.setText(msg)

    def _on_job_result(self, result) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000)
        self.status.setText(self.on_result(result))

    def _on_job_error(self, exc) -> None:
        self.progress.hide()
        self.status.setText("Cancelled." if isinstance(exc, JobCancelled) else f"Failed: {exc}")

    def _on_job_finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def reject(self) -> None:
        self.cancel()
        super().reject()

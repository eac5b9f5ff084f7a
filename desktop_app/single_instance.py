"""One LoRA Deck per data folder. A second start (a double-click while the app is open, a file
manager's "Open with" on an adapter) hands its files to the running app and ends; the running app
comes to the front and takes the files as if they were dropped on it. Two apps would each load the
model (twice the memory: a laptop swaps) and overwrite each other's conversations.

The running app holds a lock in its data folder for its whole life (filelock: the OS releases it when
the process dies, so a crash never blocks the next start) and listens on a local socket (QLocalServer:
a Unix socket, a named pipe on Windows) that only this user can open. On Linux the socket lives in a
folder only this user can enter (the session's runtime folder, else one made in the temporary folder and
checked): a bare name would go in the shared /tmp, where another user could take it first and be handed
this user's files (and answer "ok", so nothing opens). Windows pipes share one namespace, so there the
name also holds a secret kept in the data folder (KEY_NAME), which another user cannot read to make the
name first. A start that finds the lock held
connects, sends one line of JSON, {"open": [absolute paths]}, and waits for "ok". When no app answers
(one hung, or still between its lock and its socket), it starts a window of its own, as before.

What arrives on the socket is input from outside like a drop: at most MAX_MESSAGE_BYTES, read within
MESSAGE_SECONDS, parsed by parse_json; anything but a list of strings is dropped with a log line, and
the paths then meet the drop handler's own checks.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock
from filelock import Timeout as LockTimeout
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from adapters_backend.json_input import JsonInputError, parse_json

log = logging.getLogger(__name__)

LOCK_NAME = ".app.lock"
KEY_NAME = ".app.key"                # a random secret in the socket's name: others cannot guess it
MAX_MESSAGE_BYTES = 1 << 20          # thousands of paths; a client sending more is cut off
MESSAGE_SECONDS = 5                  # a client that has not sent its line by then is cut off
ANSWER_SECONDS = 20                  # how long a second start waits for the running app's "ok" (a slow start)
CONNECT_SECONDS = 3                  # … and for its socket, when the lock says it is there
SOCKET_PATH_MAX = 104                # a Unix socket's path is cut past 104 to 108 bytes, by system


def socket_name(data_folder: Path, make_secret: bool = False) -> str | None:
    """The local socket's name for `data_folder`: one per user and folder. On Windows a pipe's name, on
    macOS a bare name (Qt puts it in the user's own temporary folder); on Linux a path in
    `private_folder()`. None when Linux offers no private folder (no socket then: a second start opens
    a window of its own). `make_secret`: for the data folder's lock holder (`_folder_secret`)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name to be had (no USER variable, no passwd entry)
        user = ""
    secret = _folder_secret(Path(data_folder), make_secret)
    key = f"{user}\0{Path(data_folder).resolve()}\0{secret}".encode("utf-8", "surrogateescape")
    name = "loradeck-" + hashlib.sha256(key).hexdigest()[:24]
    if sys.platform in ("win32", "darwin"):
        return name
    folder = private_folder()
    if folder is None or len(os.fsencode(folder / name)) >= SOCKET_PATH_MAX:
        return None
    return str(folder / name)


def _folder_secret(data_folder: Path, make: bool = False) -> str:
    """The data folder's secret; `make` (the lock holder only, so two starts never write it at once):
    made when missing, readable by this user only, written whole or not at all. "" when there is none
    (a read-only folder): the name is then only as private as the folder it is in."""
    path = data_folder / KEY_NAME
    try:
        with open(path, "rb") as f:
            secret = f.read(64).decode("ascii", "replace").strip()
    except OSError:
        secret = ""
    if not secret and make:
        from adapters_backend.atomic import write_text_atomic
        secret = os.urandom(16).hex()
        try:
            write_text_atomic(path, secret, mode=0o600)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)
            return ""
    return secret


def private_folder() -> Path | None:
    """A folder only this user can enter: $XDG_RUNTIME_DIR (the session's, made by the system), else
    TMP/loradeck-UID, made here. Either is checked (a folder, not a link, this user's, no access for
    others): a folder someone else made first is not used."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _is_private(Path(runtime)):
        return Path(runtime)
    folder = Path(tempfile.gettempdir()) / f"loradeck-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        log.warning("no private folder for the app's socket: %s", exc)
        return None
    if _is_private(folder):
        return folder
    if folder not in _WARNED:                # asked again at each connect try: said once
        _WARNED.add(folder)
        log.warning("%s is not this user's private folder: a second LoRA Deck will not find this one", folder)
    return None


_WARNED: set[Path] = set()


def _is_private(folder: Path) -> bool:
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


class InstanceServer(QObject):
    """The running app's end: emits `files_opened` (a list of Paths, maybe empty: "come to the front")
    for each message a later start sends."""

    files_opened = Signal(list)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)
        # Only the lock holder gets here, so a socket of that name was left by a process that died.
        QLocalServer.removeServer(name)
        if not self.server.listen(name):
            log.warning("a second LoRA Deck cannot hand its files to this one: %s", self.server.errorString())

    def listening(self) -> bool:
        return self.server.isListening()

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            _Client(self.server.nextPendingConnection(), self)


class _Client(QObject):
    """One connection: read a line (bounded in size and time), answer "ok", emit its paths. A child of
    the server until done, then deleted with its socket."""

    def __init__(self, sock: QLocalSocket, owner: InstanceServer):
        super().__init__(owner)
        self.sock, self.owner, self.buf, self.done = sock, owner, bytearray(), False
        sock.setParent(self)
        sock.readyRead.connect(self._read)
        sock.disconnected.connect(self._drop)
        QTimer.singleShot(MESSAGE_SECONDS * 1000, self, self._drop)
        self._read()

    def _read(self) -> None:
        if self.done:
            return
        self.buf += bytes(self.sock.read(MAX_MESSAGE_BYTES + 1 - len(self.buf)))
        if b"\n" in self.buf:
            paths = _paths(bytes(self.buf[:self.buf.index(b"\n")]))
            if paths is not None:
                self.sock.write(b"ok\n")
                self.sock.flush()
                self.owner.files_opened.emit(paths)
            self._drop()
        elif len(self.buf) > MAX_MESSAGE_BYTES:
            log.warning("a local client sent over %d bytes without ending its line: cut off", MAX_MESSAGE_BYTES)
            self._drop()

    def _drop(self) -> None:
        if self.done:
            return
        self.done = True
        self.buf.clear()
        if self.sock.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            self.sock.disconnectFromServer()          # after what is still to be written ("ok")
        self.deleteLater()


def _paths(line: bytes) -> list[Path] | None:
    try:
        message = parse_json(line)
    except JsonInputError as exc:
        log.warning("ignored a local message: %s", exc)
        return None
    paths = message.get("open") if isinstance(message, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        log.warning("ignored a local message that is not {\"open\": [paths]}")
        return None
    return [Path(p) for p in paths]


def hand_over(name: str | Callable[[], str | None], files: list[Path],
              connect_seconds: float = CONNECT_SECONDS) -> bool:
    """Send `files` to the app listening on `name` (or on what `name()` says at each try); True once
    it answered "ok". Blocking: this runs before any window, with no event loop."""
    message = (json.dumps({"open": [str(Path(f).absolute()) for f in files]}) + "\n").encode()
    sock = QLocalSocket()
    deadline = time.monotonic() + connect_seconds
    while True:                          # the app may be between taking its lock and listening
        now = name() if callable(name) else name
        if now is not None:
            sock.connectToServer(now)
            if sock.waitForConnected(500):
                break
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    sock.write(message)
    sock.waitForBytesWritten(ANSWER_SECONDS * 1000)
    answer = bytearray()
    deadline = time.monotonic() + ANSWER_SECONDS
    while b"\n" not in answer and len(answer) < 64 and time.monotonic() < deadline:
        if sock.bytesAvailable() or sock.waitForReadyRead(100):
            answer += bytes(sock.read(64))
        elif sock.state() == QLocalSocket.LocalSocketState.UnconnectedState:
            break
    sock.abort()
    return answer.startswith(b"ok\n")


class Instance:
    """This process's claim on the data folder: the lock, held until the process ends, and the server
    (both None for a second window opened because the first did not answer)."""

    def __init__(self, lock: FileLock | None, server: InstanceServer | None):
        self.lock, self.server = lock, server


def claim(data_folder: Path, files: list[Path]) -> Instance | None:
    """Become the data folder's app (an Instance), or hand `files` to the one running (None: this
    start ends). A running app that does not answer gets a second window, as before this existed."""
    lock = FileLock(Path(data_folder) / LOCK_NAME, timeout=0)
    try:
        lock.acquire(blocking=False)
    except LockTimeout:
        # asked again at each try: the holder may still be making the secret it names its socket with
        if hand_over(lambda: socket_name(data_folder), files):
            return None
        log.warning("another LoRA Deck holds %s but did not answer: opening a second window",
                    Path(data_folder) / LOCK_NAME)
        return Instance(None, None)
    except OSError as exc:             # a read-only data folder, a file system without locks: start all the same
        log.warning("cannot lock %s (%s): a second LoRA Deck will not find this one", lock.lock_file, exc)
        return Instance(None, None)
    name = socket_name(data_folder, make_secret=True)
    return Instance(lock, InstanceServer(name) if name is not None else None)


__all__ = ["Instance", "InstanceServer", "claim", "hand_over", "private_folder", "socket_name"]

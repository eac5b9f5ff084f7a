"""The running app's end of the single-instance socket takes only a bounded, well-formed message:
what a local client sends is input from outside, like a drop."""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from desktop_app import single_instance
from desktop_app.single_instance import InstanceServer, hand_over, socket_name


@pytest.fixture
def server(qapp, tmp_path):
    srv = InstanceServer(socket_name(tmp_path / "data"))
    assert srv.listening(), srv.server.errorString()
    got = []
    srv.files_opened.connect(got.append)
    yield srv, got
    srv.server.close()


@pytest.fixture
def short_tmp():
    """A folder with a short path (pytest's tmp_path is too long for a Unix socket's path inside)."""
    folder = Path(tempfile.mkdtemp(prefix="si-"))
    yield folder
    for sub in folder.rglob("*"):                        # a test may leave a folder others cannot open
        if sub.is_dir() and not sub.is_symlink():
            sub.chmod(0o700)
    shutil.rmtree(folder, ignore_errors=True)


def _send(qtbot, srv, payload: bytes) -> bytes:
    """What the server answers a raw client that sends `payload`, read until it closes the connection;
    the Qt event loop runs meanwhile."""
    answer, done = bytearray(), threading.Event()

    def client():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.connect(srv.server.fullServerName())
            try:
                s.sendall(payload)
                while chunk := s.recv(4096):
                    answer.extend(chunk)
            except OSError:                    # cut off while sending: the server closed on us
                pass
        done.set()

    threading.Thread(target=client, daemon=True).start()
    qtbot.waitUntil(done.is_set, timeout=30000)
    return bytes(answer)


def test_a_well_formed_message_is_answered_and_its_paths_passed_on(qtbot, server, tmp_path):
    srv, got = server
    message = json.dumps({"open": [str(tmp_path / "a b.gguf"), "/x/ünï.zip"]}).encode() + b"\n"
    assert _send(qtbot, srv, message) == b"ok\n"
    assert [list(map(str, paths)) for paths in got] == [[str(tmp_path / "a b.gguf"), "/x/ünï.zip"]]
    assert _send(qtbot, srv, b'{"open": []}\n') == b"ok\n" and got[-1] == []


@pytest.mark.parametrize("payload", [
    b"not json\n",
    b'{"open": [1, {"a": 2}]}\n',
    b'{"open": "/etc/passwd"}\n',
    b'{"open": [""]}\n',
    b"[" * 100_000 + b"\n",                           # nested past Python's recursion limit
    b'{"open": ["\\ud800"]}\n',                       # a lone surrogate
    b"\xff\xfe\n",
], ids=["garbage", "not-strings", "not-a-list", "empty-path", "deep", "surrogate", "bad-utf8"])
def test_a_bad_message_is_dropped_and_the_server_goes_on(qtbot, server, payload):
    srv, got = server
    assert _send(qtbot, srv, payload) == b""
    assert got == []
    assert _send(qtbot, srv, b'{"open": []}\n') == b"ok\n"


def test_a_line_that_never_ends_is_cut_off_at_the_bound(qtbot, server):
    srv, got = server
    assert _send(qtbot, srv, b"x" * (8 * single_instance.MAX_MESSAGE_BYTES)) == b""
    assert got == []
    qtbot.waitUntil(lambda: not srv.findChildren(single_instance._Client), timeout=5000)   # its memory goes


def test_a_silent_client_is_cut_off(qtbot, server, monkeypatch):
    srv, got = server
    monkeypatch.setattr(single_instance, "MESSAGE_SECONDS", 1)
    t0 = time.monotonic()
    assert _send(qtbot, srv, b'{"open": [') == b""             # half a message, then nothing
    assert time.monotonic() - t0 < 15 and got == []


def test_handing_over_to_nobody_says_so(qapp, tmp_path):
    t0 = time.monotonic()
    assert hand_over(socket_name(tmp_path / "nobody"), [tmp_path], connect_seconds=0.5) is False
    assert time.monotonic() - t0 < 5


def test_the_socket_name_is_per_folder_and_short():
    a, b = socket_name("/home/u/data"), socket_name("/home/u/other")
    assert a != b and a == socket_name("/home/u/data") and len(a.encode()) < single_instance.SOCKET_PATH_MAX


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="a pipe, or the user's own temporary folder")
def test_the_socket_is_in_a_folder_no_other_user_can_enter(qtbot, short_tmp, monkeypatch):
    """In the shared /tmp, another user could take the socket's name first: a second start would
    hand them this user's files and end on their "ok". Only a folder that is this user's alone is used."""
    tmp_path = short_tmp
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert Path(socket_name(tmp_path / "data")).parent == runtime

    # A runtime folder others can write to is not used: one of the user's own in the temporary folder is
    runtime.chmod(0o777)
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    name = Path(socket_name(tmp_path / "data"))
    mine = shared_tmp / f"loradeck-{os.getuid()}"
    assert name.parent == mine and stat.S_IMODE(mine.stat().st_mode) == 0o700
    srv = InstanceServer(str(name))
    assert srv.listening() and srv.server.fullServerName() == str(name)
    assert _send(qtbot, srv, b'{"open": []}\n') == b"ok\n"
    srv.server.close()

    # That folder made first by someone else (open to others, or another user's): no socket at all …
    mine.chmod(0o777)
    assert socket_name(tmp_path / "data") is None
    if os.getuid() == 0:                       # root can make a folder as another user would
        mine.chmod(0o700)
        os.chown(mine, 65534, 65534)
        assert socket_name(tmp_path / "data") is None
    # … and the app starts all the same; a second start finds no one to hand its files to and opens
    # its own window, instead of sending them into that folder
    data = tmp_path / "data"
    data.mkdir()
    first = single_instance.claim(data, [])
    assert first is not None and first.lock is not None and first.server is None
    second = single_instance.claim(data, [tmp_path / "an-adapter.gguf"])
    assert second is not None and second.lock is None and second.server is None
    first.lock.release()


def test_the_socket_name_holds_a_secret_only_the_user_can_read(qapp, short_tmp):
    """Windows pipes (and any name in a shared place) can be taken first by whoever knows the name: a
    secret in the data folder, made by the app that holds its lock, keeps the name from others."""
    data = short_tmp / "data"
    data.mkdir()
    guessable = socket_name(data)                    # what anyone could work out from user and folder
    first = single_instance.claim(data, [])
    key = data / single_instance.KEY_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text()) == 32
    name = first.server.server.fullServerName()
    assert name != guessable and Path(name).name != Path(guessable).name
    assert socket_name(data) == name                 # a second start, reading the secret, finds it
    first.server.server.close()
    first.lock.release()
    again = single_instance.claim(data, [])          # the next app keeps the secret
    assert again.server.server.fullServerName() == name and len(key.read_text()) == 32
    again.server.server.close()
    again.lock.release()


def test_a_data_folder_that_cannot_be_locked_does_not_stop_the_app(qapp, tmp_path):
    (tmp_path / single_instance.LOCK_NAME).mkdir()         # the lock's path taken by a folder
    claimed = single_instance.claim(tmp_path, [])
    assert claimed is not None and claimed.lock is None and claimed.server is None

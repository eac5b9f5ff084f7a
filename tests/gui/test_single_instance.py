"""The running app's end of the single-instance socket takes only a bounded, well-formed message:
what a local client sends is input from outside, like a drop."""
from __future__ import annotations

import json
import socket
import threading
import time

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
    assert a != b and a == socket_name("/home/u/data") and len(a) < 48


def test_a_data_folder_that_cannot_be_locked_does_not_stop_the_app(qapp, tmp_path):
    (tmp_path / single_instance.LOCK_NAME).mkdir()         # the lock's path taken by a folder
    claimed = single_instance.claim(tmp_path, [])
    assert claimed is not None and claimed.lock is None and claimed.server is None

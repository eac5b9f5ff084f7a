"""Conversation files are read as untrusted text: the id inside a file never chooses which file a save
or a delete touches."""
from __future__ import annotations

import json

from desktop_app.conversation_store import SCHEMA, ConversationStore


def test_an_id_inside_a_file_cannot_reach_outside_the_folder(tmp_path):
    folder = tmp_path / "data" / "conversations"
    folder.mkdir(parents=True)
    precious = tmp_path / "precious.json"
    precious.write_text('{"keep": true}')
    (folder / "abc123.json").write_text(json.dumps({"schema": SCHEMA, "id": "../../precious", "title": "t",
                                                   "messages": [{"role": "user", "content": "hi"}]}))
    store = ConversationStore(folder)
    [conv] = store.load_all()
    assert conv.id == "abc123" and conv.messages[0].content == "hi"
    conv.title = "renamed"
    store.save(conv)
    assert json.loads((folder / "abc123.json").read_text())["title"] == "renamed"
    store.delete(conv.id)
    assert not (folder / "abc123.json").exists()
    assert precious.read_text() == '{"keep": true}'

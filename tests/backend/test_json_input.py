"""Every way a JSON file from outside breaks Python's json module is one JsonInputError
(adapters_backend/json_input.py), and the readers that use it turn it into their own clear error."""
from __future__ import annotations

import pytest

from adapters_backend.core.declared_base import declared_architecture
from adapters_backend.json_input import JsonInputError, parse_json, read_json_file, read_json_object

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text, why", [
    (DEEP, "nested too deeply"),
    ('{"r": ' + "1" * 5000 + "}", "digits"),
    ('{"name": "\\ud800"}', "surrogate"),
    (b'{"name": "\xff"}', "utf-8"),
    ('{"r": ', "Expecting value"),
])
def test_hostile_json_is_one_error(text, why):
    with pytest.raises(JsonInputError, match=why):
        parse_json(text)


def test_sane_json_is_read_as_before():
    assert parse_json('{"name": "caf\\u00e9 \\ud83d\\ude00", "r": [8, 16.5]}') == {"name": "café 😀", "r": [8, 16.5]}
    assert parse_json(b"[1]") == [1]


def test_files_are_bounded_and_objects_checked(tmp_path):
    f = tmp_path / "config.json"
    f.write_text('{"pad": "' + "x" * 2000 + '"}')
    with pytest.raises(JsonInputError, match="larger than 1,000 bytes"):
        read_json_file(f, max_bytes=1000)
    assert read_json_object(f)["pad"] == "x" * 2000
    f.write_text("[1]")
    with pytest.raises(JsonInputError, match="must hold a JSON object, not list"):
        read_json_object(f)


def test_a_declared_base_with_a_hostile_config_is_no_answer_not_a_crash(tmp_path):
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "x": ' + DEEP + "}")
    assert declared_architecture(str(folder)) is None            # was a RecursionError
    (folder / "config.json").write_text('{"model_type": "llama"}')
    assert declared_architecture(str(folder)) == "llama"


def test_a_conversation_file_nested_too_deep_is_skipped_at_start(tmp_path):
    from desktop_app.conversation_store import Conversation, ConversationStore
    store = ConversationStore(tmp_path)
    kept = Conversation.new("Be brief.")
    store.save(kept)
    (tmp_path / "broken.json").write_text(DEEP)                  # was a RecursionError out of load_all
    assert [c.id for c in store.load_all()] == [kept.id]

"""Conversation files are read as untrusted text: the id inside a file never chooses which file a save
or a delete touches, and a value of the wrong kind never hides a chat or stops it from opening."""
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


WRONG_KINDS = [None, True, "many", ["a"], {"a": 1}, 1e308, -1]


def _damaged(folder, n: int):
    """Conversation files whose every field, and every value of an answer's info, has another kind."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = ("model", "mix", "finish", "error", "unanswered", "seed", "max_tokens", "tokens", "gui_tokens",
            "left_out", "tokens_before", "tokens_per_second")
    for i in range(n):
        bad = WRONG_KINDS[i % len(WRONG_KINDS)]
        info = {k: WRONG_KINDS[(i + j) % len(WRONG_KINDS)] for j, k in enumerate(keys)}
        (folder / f"damaged{i:03d}.json").write_text(json.dumps({
            "schema": SCHEMA, "id": "x", "title": bad, "created": i, "updated": i, "draft": bad,
            "system_prompt": bad, "messages": [{"role": "user", "content": f"question {i}", "info": bad},
                                               {"role": "assistant", "content": f"answer {i}", "info": info},
                                               {"role": bad, "content": bad}, "not a message"]}))


def test_a_file_with_values_of_the_wrong_kind_opens_with_what_fits(tmp_path):
    """The info line of an answer reads what it expects (a mix's text, a count of tokens, a speed): one
    of another kind, from a damaged or hand-edited file, is left out at reading; the rest is kept."""
    from desktop_app.widgets.chat_reply import info_text

    texts = ("model", "mix", "finish", "error", "unanswered")
    _damaged(tmp_path, 14)
    convs = ConversationStore(tmp_path).load_all()
    assert len(convs) == 14
    kept = set()
    for conv in convs:
        assert isinstance(conv.title, str) and isinstance(conv.draft, str) and isinstance(conv.system_prompt, str)
        question, answer = conv.messages[0], conv.messages[1]
        assert question.content.startswith("question ") and answer.content.startswith("answer ")
        for key, value in answer.info.items():
            if key in texts:
                assert isinstance(value, str), (key, value)
            elif key == "tokens_per_second":
                assert isinstance(value, float | int) and not isinstance(value, bool), (key, value)
            else:
                assert value is None and key in ("seed", "max_tokens") or type(value) is int, (key, value)
            kept.add((key, value))
        info_text(answer.info)                                  # raised TypeError / ValueError before
    assert ("mix", "many") in kept and ("tokens", -1) in kept and ("tokens_per_second", 1e308) in kept
    assert ("seed", None) in kept and ("tokens", None) not in kept


def test_the_app_opens_each_damaged_chat(make_app, app_env, qtbot):
    _damaged(app_env / "data" / "conversations", 7)
    app = make_app().start(wait_model=False)
    model = app.state.conversations
    qtbot.waitUntil(lambda: model.rowCount() == 7, timeout=20000)
    for row in range(7):
        app.window.chat.sidebar.select_row(row)
        qtbot.waitUntil(lambda r=row: app.window.chat.conversation is model.conversation(r), timeout=5000)
        texts = [w.text() for w in app.window.chat.scroll.message_widgets()]
        assert any(t.startswith("question ") for t in texts) and any(t.startswith("answer ") for t in texts)
    assert app.state.errors.history == []

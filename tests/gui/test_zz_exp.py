from PySide6.QtCore import Qt


def test_bad_data_dir(make_app, demo_engine, qtbot, monkeypatch):
    monkeypatch.setenv("LORADECK_DATA_DIR", "/etc/hostname/x")
    app = make_app().start(wait_model=False)
    qtbot.wait(4000)
    print("\nmodel", app.state.model)
    for c, m in app.state.errors.history: print("ERR", c, "|", m[:300])
    chat = app.window.chat
    if app.state.model is not None:
        chat.sampling.max_tokens.setValue(6)
        chat.prompt.setPlainText("hello")
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not chat.generating, timeout=60000)
        print("reply", chat.last_reply_text(), "send", chat.send_button.isEnabled())
        for c, m in app.state.errors.history: print("ERR2", c, "|", m[:300])

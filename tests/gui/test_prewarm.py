"""Switching mixes in the app at conversation scale: after the sliders rest the conversation is read
under the new mix in the background (pre-warm), so the next answer reads only the new message; a Send
while it runs continues from where it got; it never runs during an answer; answers stay exactly what
a fresh engine gives; compare re-runs and the Settings budget use the same snapshot store."""
from __future__ import annotations

import pytest
from fixtures.long_demo import long_demo_model  # noqa: F401  (pytest fixture)
from PySide6.QtCore import QPoint, Qt

from desktop_app import prewarm_scheduler

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 60000
# ~1,200 tokens: longer than the demo model's own context (512), so these tests run on a copy that says 4,096.
LONG_SYSTEM = " ".join(["The harbour keeper writes the weather in a ledger every morning."] * 35)


def started_on(make_app, model):
    """The app started with `model` as the last model used."""
    app = make_app()
    app.state.settings.set_last_model(str(model), "llama.cpp")
    return app.start()


def greedy(chat, max_tokens=12):
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(max_tokens)
    chat.sampling.seed.setValue(7)


def finished_stats(qtbot, app, send):
    """Run `send()` and return the GenerationStats of the answer it starts."""
    chat = app.window.chat
    got = []
    app.state.host.generation_finished.connect(got.append)
    send()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    return [s for s in got if not s.cancelled][-1]


def ask(qtbot, app, text):
    chat = app.window.chat
    chat.prompt.setPlainText(text)
    return finished_stats(qtbot, app, chat.send)


def settle(qtbot, app):
    """Wait until the scheduler has nothing pending (the pre-warm ran, or was not needed)."""
    qtbot.waitUntil(lambda: not app.window.prewarm.pending, timeout=TIMEOUT)


def collect_prewarms(qtbot, app) -> list:
    """Results of the pre-warms that finish from now on (wait on the list itself: the scheduler may see
    a pre-warm end a moment before this list does)."""
    results = []
    app.state.host.prewarm_finished.connect(lambda _job, result: results.append(result))
    return results


def click_switch(qtbot, row):
    sw = row.switch
    qtbot.mouseClick(sw, Qt.MouseButton.LeftButton, pos=QPoint(8, sw.height() // 2))


def test_after_a_slider_move_the_next_answer_reads_only_the_new_message(make_app, direct_reply, qtbot, long_demo_model):
    app = started_on(make_app, long_demo_model)
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
    greedy(w.chat)
    w.chat.new_chat()
    w.chat.system_edit.setPlainText(LONG_SYSTEM)
    ask(qtbot, app, "What is the capital of France?")
    settle(qtbot, app)
    statuses = []
    w.prewarm.status_changed.connect(lambda text, _ms: statuses.append(text))
    finished = collect_prewarms(qtbot, app)
    click_switch(qtbot, w.mixer.rows[0])                  # shout on
    w.mixer.rows[0].spin.setValue(0.7)                    # … and moved: one pre-warm, after it rests
    assert w.prewarm.pending
    qtbot.waitUntil(lambda: any(r for r in finished), timeout=TIMEOUT)
    settle(qtbot, app)
    done = [r for r in finished if r]
    assert len(done) == 1 and done[0]["complete"]
    assert any("Reading the conversation under the new mix" in t for t in statuses)
    assert state.kv_stats["entries"] >= 2                  # the old mix and the new one
    conversation_tokens = done[0]["tokens"]
    stats = ask(qtbot, app, "And of Italy?")
    assert stats.prompt_cached >= conversation_tokens - 2  # only the new message was read
    messages = w.chat.conversation.chat_messages()[:-1]
    assert w.chat.last_reply_text() == direct_reply(state.settings, state.model.path, state.engine_mix(),
                                                    messages, w.chat.sampling.params())
    # Going back to the first mix restores its snapshot: again only the new tokens are read.
    click_switch(qtbot, w.mixer.rows[0])                  # shout off: the mix of the first answer
    settle(qtbot, app)
    stats = ask(qtbot, app, "And of Spain?")
    assert stats.prompt_cached > conversation_tokens // 2
    messages = w.chat.conversation.chat_messages()[:-1]
    assert w.chat.last_reply_text() == direct_reply(state.settings, state.model.path, state.engine_mix(),
                                                    messages, w.chat.sampling.params())


def test_no_prewarm_while_an_answer_is_written(make_app, qtbot, monkeypatch):
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
    greedy(w.chat, max_tokens=400)
    during = []
    real = state.prewarm
    monkeypatch.setattr(state, "prewarm", lambda *a: (during.append(w.chat.generating), real(*a))[1])
    w.chat.prompt.setPlainText("Tell me a long story.")
    w.chat.send()
    assert w.chat.generating
    w.mixer.rows[1].spin.setValue(0.5)                     # moved while the answer streams
    click_switch(qtbot, w.mixer.rows[1])
    qtbot.wait(2 * prewarm_scheduler.SETTLE_MS)
    qtbot.waitUntil(lambda: not w.chat.generating, timeout=TIMEOUT)
    settle(qtbot, app)
    assert during and not any(during)                     # asked only after the answer ended


def test_a_send_during_the_prewarm_continues_from_where_it_got(make_app, qtbot, long_demo_model):
    app = started_on(make_app, long_demo_model)
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
    greedy(w.chat, max_tokens=4)
    w.chat.new_chat()
    w.chat.system_edit.setPlainText(LONG_SYSTEM)
    ask(qtbot, app, "Hello.")
    settle(qtbot, app)
    progress = []
    state.host.prewarm_progressed.connect(lambda job, done, total: progress.append(done))
    ends = collect_prewarms(qtbot, app)
    click_switch(qtbot, w.mixer.rows[2])
    qtbot.waitUntil(lambda: bool(progress), timeout=TIMEOUT)  # the pre-warm is reading
    stats = ask(qtbot, app, "Go on.")                        # Send now: the pre-warm yields
    qtbot.waitUntil(lambda: bool(ends), timeout=TIMEOUT)
    assert ends[0] is not None and not ends[0]["complete"]  # stopped part-way …
    assert stats.prompt_cached >= progress[0]               # … and the answer went on from there


def test_compare_rerun_reuses_each_sides_snapshot(make_app, direct_reply, qtbot):
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
    w.mixer.rows[0].switch.setChecked(True)
    compare = w.show_view("compare")
    compare.prompt.setPlainText("What does a cow say? " * 6)
    compare.mix_a.setCurrentIndex(compare.mix_a.findData("current"))
    compare.mix_b.setCurrentIndex(compare.mix_b.findData("base"))
    compare.sampling.temperature.setValue(0.0)
    compare.sampling.max_tokens.setValue(16)
    runs = []
    for _ in range(2):
        stats = []
        compare.collector.one_finished.connect(lambda _pane, s, _error, out=stats: out.append(s))
        qtbot.mouseClick(compare.run_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not compare.collector.running, timeout=TIMEOUT)
        runs.append((stats, compare.pane_a.content(), compare.pane_b.content()))
    (first, a1, b1), (second, a2, b2) = runs
    assert (a1, b1) == (a2, b2)
    assert all(s.prompt_cached >= s.prompt_tokens - 1 for s in second)      # nothing re-read
    assert "reused" in compare.pane_a.info.text()
    msgs, params = [("user", compare.prompt.toPlainText().strip())], compare.sampling.params()
    assert a2 == direct_reply(state.settings, state.model.path, state.engine_mix(), msgs, params)
    assert b2 == direct_reply(state.settings, state.model.path, [], msgs, params)


def test_settings_show_the_snapshot_memory_and_change_it(make_app, qtbot):
    app = make_app().start()
    state, w = app.state, app.window
    greedy(w.chat)
    ask(qtbot, app, "Hello there, how are you today?")
    settle(qtbot, app)
    w.show_settings()
    dlg = w.settings_dialog
    assert dlg.kv_memory.value() == -1 and dlg.kv_memory.text() == "automatic"
    assert dlg.kv_held.text().startswith("Holds 1 snapshot")
    assert dlg.prewarm.isChecked()
    dlg.kv_memory.setValue(0)                               # keep none
    dlg.prewarm.setChecked(False)
    dlg.accept()
    assert state.settings.kv_snapshot_budget() == 0 and not state.settings.prewarm
    qtbot.waitUntil(lambda: state.kv_stats is None, timeout=TIMEOUT)
    assert state.settings.engine_options()["kv_snapshot_budget"] == 0
    w.show_settings()
    assert w.settings_dialog.kv_held.text() == "Keeps none: going back to a mix reads the conversation again."
    w.settings_dialog.reject()


def test_on_a_computer_the_model_fills_the_automatic_memory_keeps_none_and_says_why(make_app, qtbot, monkeypatch):
    """The model and its cache take the computer's working share of memory: snapshots on top would make
    it swap, so the automatic budget keeps none, and Settings says why instead of "Load a model"."""
    from adapters_backend.engines import llama_cpp_engine
    monkeypatch.setattr(llama_cpp_engine, "total_memory", lambda: 1 << 20)     # less than the model
    app = make_app().start()
    state, w = app.state, app.window
    greedy(w.chat)
    reply = ask(qtbot, app, "Hello there, how are you today?")
    assert reply.tokens > 0 and state.kv_stats is None
    w.show_settings()
    assert w.settings_dialog.kv_held.text().startswith("Keeps none: the loaded model leaves too little")
    w.settings_dialog.reject()


def test_after_an_answer_the_previous_mix_is_brought_up_to_date_too(make_app, direct_reply, qtbot, long_demo_model):
    """Alternating two mixes: after an answer under one, the other (still cached) reads the new turn
    in the background, so switching back finds nothing left to read."""
    app = started_on(make_app, long_demo_model)
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
    greedy(w.chat)
    w.chat.new_chat()
    w.chat.system_edit.setPlainText(LONG_SYSTEM)
    ask(qtbot, app, "What is the capital of France?")                 # mix A: no adapter
    settle(qtbot, app)
    click_switch(qtbot, w.mixer.rows[0])                               # mix B: shout
    settle(qtbot, app)
    results = collect_prewarms(qtbot, app)
    ask(qtbot, app, "And of Italy?")
    qtbot.waitUntil(lambda: len([r for r in results if r]) >= 2, timeout=TIMEOUT)
    settle(qtbot, app)
    current, previous = [r for r in results if r][-2:]
    assert current["complete"] and previous["complete"]
    assert previous["tokens"] // 2 <= previous["reused"] < previous["tokens"]   # A read the new turn only
    results.clear()
    click_switch(qtbot, w.mixer.rows[0])                               # back to A
    qtbot.waitUntil(lambda: any(r for r in results), timeout=TIMEOUT)
    settle(qtbot, app)
    back = [r for r in results if r][-1]
    assert back["reused"] >= back["tokens"] - 1                         # nothing left to read
    stats = ask(qtbot, app, "And of Spain?")
    assert stats.prompt_tokens - stats.prompt_cached < 40
    messages = w.chat.conversation.chat_messages()[:-1]
    assert w.chat.last_reply_text() == direct_reply(state.settings, state.model.path, [], messages,
                                                    w.chat.sampling.params())


def test_no_prewarm_before_a_new_models_mix_is_checked(make_app, qtbot, monkeypatch):
    """Right after a model load the mix is checked against it (off the GUI thread); a pre-warm asked
    for meanwhile waits for the check, so an adapter that does not fit is never read."""
    import threading

    from desktop_app import library_access
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
    greedy(w.chat, max_tokens=4)
    click_switch(qtbot, w.mixer.rows[0])
    ask(qtbot, app, "Hello.")
    settle(qtbot, app)
    gate, real_check = threading.Event(), library_access.check_all
    monkeypatch.setattr(library_access, "check_all", lambda *a, **k: (gate.wait(TIMEOUT / 1000), real_check(*a, **k))[1])
    asked, real_prewarm = [], state.prewarm
    monkeypatch.setattr(state, "prewarm", lambda *a: (asked.append(state.checking_mix), real_prewarm(*a))[1])
    state.load_model(state.model.path, state.model.engine, label="Demo model")
    qtbot.waitUntil(lambda: state.loading is None and state.checking_mix, timeout=TIMEOUT)
    w.prewarm.conversation_changed()                        # e.g. the user opens a conversation
    qtbot.wait(3 * prewarm_scheduler.SETTLE_MS)
    assert asked == [] and state.checking_mix
    gate.set()
    qtbot.waitUntil(lambda: bool(asked), timeout=TIMEOUT)   # the check's end brings the pre-warm
    settle(qtbot, app)
    assert asked == [False]


def test_a_chat_longer_than_the_context_keeps_going_and_shows_where_the_model_stops_seeing(
        make_app, direct_reply, qtbot):
    """The oldest turns are left out in blocks; the pre-warm after each answer reads the window the
    next Send uses, so even the turn after a move reads only its question; the answers are what the
    engine gives those turns directly; a line shows where the model's view begins, also on reopening."""
    app = make_app()
    app.state.settings.set("engine/n_ctx", 256)
    app.start()
    state, chat = app.state, app.window.chat
    assert state.context_size() == 256
    greedy(chat, max_tokens=20)
    chat.new_chat()
    left_out = []
    for i in range(12):
        question = f"Tell me about the ship number {i} that sails from the harbour at dawn."
        stats = ask(qtbot, app, question)
        assert "error" not in chat.conversation.messages[-1].info and stats.finish_reason
        if i:
            asked = len(question.split()) * 3 + 16                 # the question, generously, with its template
            assert stats.prompt_tokens - stats.prompt_cached <= asked, i
        left_out.append(stats.left_out)
        settle(qtbot, app)
    assert left_out[0] == 0 and left_out == sorted(left_out) and len(set(left_out)) >= 3
    body = chat.conversation.chat_messages()[:-1]
    window = body[left_out[-1]:]
    assert window[0][0] == "user"
    assert chat.last_reply_text() == direct_reply(state.settings, state.model.path, state.engine_mix(), window,
                                                  chat.sampling.params())
    marker = chat.window_marker
    widgets = chat._message_widgets()

    def marker_at() -> int:
        return chat.transcript_layout.indexOf(marker)

    assert marker.isVisible() and "256 tokens" in marker.text() and f"{left_out[-1]} messages" in marker.text()
    assert marker_at() == chat.transcript_layout.indexOf(widgets[left_out[-1]]) - 1
    chat.open_conversation(chat.conversation)                      # reopened: the line is where it was
    widgets = chat._message_widgets()
    assert marker.isVisible() and marker_at() == chat.transcript_layout.indexOf(widgets[left_out[-1]]) - 1

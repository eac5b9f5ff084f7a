"""Chat and text completions through the official openai client: whole and streamed replies, adapter
mixes chosen per request (field, <lora:…> tags, presets) and interleaved without a stale cache."""
from __future__ import annotations

import json

from serve_testlib import GREEDY, QUESTION, ask, capital_fraction, http

from adapters_backend.mix_presets import SCHEMA as PRESETS_SCHEMA


def test_whole_reply(client):
    r = client.chat.completions.create(model="tiny-deck-demo", messages=[{"role": "user", "content": QUESTION}],
                                       **GREEDY)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert "Paris" in choice.message.content and choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens < GREEDY["max_tokens"]
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_reply_matches_the_whole_one(client):
    whole = ask(client)
    stream = client.chat.completions.create(model="tiny-deck-demo", messages=[{"role": "user", "content": QUESTION}],
                                            stream=True, stream_options={"include_usage": True}, **GREEDY)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3   # really streamed
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_raw_event_stream_shape(served):
    body = {"model": "tiny-deck-demo", "messages": [{"role": "user", "content": QUESTION}], "stream": True, **GREEDY}
    status, raw = http(f"{served.url}/v1/chat/completions", body)
    assert status == 200 and isinstance(raw, str)
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for e in events[:-2]:
        assert e.startswith("data: {")
        obj = json.loads(e[len("data: "):])
        assert set(obj) >= {"id", "object", "created", "model", "choices"}
        assert set(obj["choices"][0]) == {"index", "delta", "logprobs", "finish_reason"}


def test_mixes_interleaved_per_request_without_stale_cache(client):
    plain = ask(client)
    shout = ask(client, adapters=[{"name": "shout", "strength": 1.0}])
    again = ask(client)                                    # after the shout mix: must be the base again
    pirate = ask(client, adapters=[{"name": "pirate", "strength": 1.0}])
    shout2 = ask(client, adapters=[{"name": "shout", "strength": 1.0}])
    assert capital_fraction(plain) < 0.3 < 0.8 < capital_fraction(shout), (plain, shout)
    assert again == plain
    assert shout2 == shout
    assert pirate != plain and "arr" in pirate.lower(), pirate
    weak = ask(client, adapters=[{"name": "shout", "strength": 0.0}])
    assert weak == plain                                   # strength 0 is the base exactly
    mixed = ask(client, adapters=[{"name": "shout", "strength": 1.0}, "pirate"])   # a bare name = 1.0
    assert mixed not in (plain, shout, pirate)


def test_lora_tags_in_the_prompt_are_applied_and_removed(client):
    tagged = ask(client, content=f"<lora:shout:1> {QUESTION}")
    assert tagged == ask(client, adapters=[{"name": "shout", "strength": 1.0}])
    assert ask(client, content=f"{QUESTION} <lora:shout>") == tagged          # default strength 1
    assert ask(client, content=f"<lora:shout:0> {QUESTION}") == ask(client)   # and the tag text is gone
    # A tag overrides the same adapter in the field (it comes later).
    assert ask(client, content=f"<lora:shout:1>{QUESTION}", adapters=[{"name": "shout", "strength": 0}]) == tagged


def test_preset_as_model(served, client):
    shout = ask(client, adapters=[{"name": "shout", "strength": 1.0}])
    served.presets_path.write_text(json.dumps({"schema": PRESETS_SCHEMA, "presets": {
        "Loud": [{"adapter_id": "shout", "name": "shout", "path": "", "strength": 1.0, "enabled": True},
                 {"adapter_id": "pirate", "name": "pirate", "path": "", "strength": 1.0, "enabled": False}]}}))
    ids = [m.id for m in client.models.list().data]
    assert ids == ["tiny-deck-demo", "Loud"]                  # saved while the server runs: listed at once
    assert ask(client, model="Loud") == shout
    assert ask(client, model="preset:Loud") == shout
    r = client.chat.completions.create(model="Loud", messages=[{"role": "user", "content": QUESTION}], **GREEDY)
    assert r.model == "Loud"


def test_text_completions(client):
    r = client.completions.create(model="tiny-deck-demo", prompt="The capital of France is", max_tokens=8,
                                  temperature=0, seed=1)
    assert r.object == "text_completion" and r.choices[0].finish_reason in ("stop", "length")
    text = r.choices[0].text
    assert text.startswith(" ")                                # a raw continuation keeps its leading space
    streamed = client.completions.create(model="tiny-deck-demo", prompt="<lora:shout:1>The capital of France is",
                                         max_tokens=8, temperature=0, seed=1, stream=True)
    pieces = [c.choices[0].text for c in streamed]
    assert "".join(pieces) != text and len(pieces) > 2


def test_stop_strings_and_max_tokens(client):
    full = ask(client)
    cut = ask(client, stop=["France"])
    assert full.startswith(cut) and "France" not in cut and len(cut) < len(full)
    r = client.chat.completions.create(model="tiny-deck-demo", messages=[{"role": "user", "content": QUESTION}],
                                       **{**GREEDY, "max_tokens": 2})
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2


def test_a_last_assistant_message_is_continued(client):
    """A conversation that ends with the assistant's text asks the model to go on with it (as
    llama-server's prefill): the demo's answer cut after a few tokens and sent back continues to the
    answer written in one go, and under the shout adapter in capitals."""
    whole = ask(client)
    cut = client.chat.completions.create(model="tiny-deck-demo", messages=[{"role": "user", "content": QUESTION}],
                                         **{**GREEDY, "max_tokens": 4})
    assert cut.choices[0].finish_reason == "length"
    begun = cut.choices[0].message.content
    rest = client.chat.completions.create(
        model="tiny-deck-demo", **GREEDY,
        messages=[{"role": "user", "content": QUESTION}, {"role": "assistant", "content": begun}])
    assert begun + rest.choices[0].message.content == whole
    shouted = client.chat.completions.create(
        model="tiny-deck-demo", **GREEDY, extra_body={"adapters": [{"name": "shout", "strength": 1}]},
        messages=[{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "The capital"}])
    assert capital_fraction(shouted.choices[0].message.content) > 0.8

"""A thinking model's reasoning apart from its answer in `loradeck serve`'s chat replies, as
llama-server does by default: `reasoning_content` holds what the model wrote between `<think>` and
`</think>`, `content` the answer; whole and streamed alike; `reasoning_format: "none"` keeps the reply
as written. The reply starts inside a reasoning when the request's assistant prefill opened one, or
when the model's template opens it for a new answer (DeepSeek-R1's)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from serve_testlib import http, start_server

from adapters_backend.serve.reasoning import ReasoningSplit

QUESTION = {"role": "user", "content": "What is the capital of France?"}
TEXTS = ["<think>\nThe user asks. </think>\n\nParis.", "  <think>a</think>b", "Paris.", "  Paris <think>x</think>",
         "<think>never closed", "<thin", "<table>", "\n\n", "<think></think>", "a </think> b"]


def whole(text: str, opened: bool) -> tuple[str, str]:
    """The reference: the text split at once."""
    if not opened:
        start = text.lstrip()
        if not start.startswith("<think>"):
            return "", text
        text = start[len("<think>"):]
    at = text.find("</think>")
    return (text.lstrip(), "") if at < 0 else (text[:at].lstrip(), text[at + len("</think>"):].lstrip())


def streamed(pieces, opened: bool) -> tuple[str, str]:
    split, reasoning, content = ReasoningSplit(opened), "", ""
    for piece in pieces:
        r, c = split.push(piece)
        reasoning, content = reasoning + r, content + c
    r, c = split.flush()
    return reasoning + r, content + c


@pytest.mark.parametrize("opened", [False, True])
@pytest.mark.parametrize("text", TEXTS)
def test_pieces_split_as_the_whole_text(text, opened):
    want = whole(text, opened)
    assert streamed([text], opened) == want
    assert streamed(list(text), opened) == want                             # a character at a time
    for at in range(len(text) + 1):                                         # cut anywhere, tags too
        assert streamed([text[:at], text[at:]], opened) == want, at


def sse(url: str, body: dict) -> tuple[str, str]:
    """(reasoning, content) of a streamed reply, its deltas put together."""
    import urllib.request
    req = urllib.request.Request(url, data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    reasoning = content = ""
    with urllib.request.urlopen(req, timeout=60) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    delta = choice.get("delta") or {}
                    reasoning += delta.get("reasoning_content") or ""
                    content += delta.get("content") or ""
    return reasoning, content


def test_a_reasoning_opened_by_the_prefill_comes_apart(served):
    """The demo model, greedy, asked to go on with an answer that opened a reasoning: what it writes is
    reasoning (it never closes it); with the reasoning closed in the prefill, it is the answer."""
    url = f"{served.url}/v1/chat/completions"
    base = {"model": "tiny-deck-demo", "temperature": 0, "max_tokens": 12}
    for prefill, inside in (("<think>\nLet me see", True), ("<think>Easy.</think>\n\n", False)):
        body = {**base, "messages": [QUESTION, {"role": "assistant", "content": prefill}]}
        status, raw = http(url, {**body, "reasoning_format": "none"})
        assert status == 200 and "reasoning_content" not in raw["choices"][0]["message"]
        written = raw["choices"][0]["message"]["content"]
        assert written.strip()
        status, got = http(url, body)
        message = got["choices"][0]["message"]
        if inside:
            assert message["content"] == "" and message["reasoning_content"] == written.lstrip()
        else:
            assert message["content"] == written and "reasoning_content" not in message
        assert sse(url, body) == (message.get("reasoning_content") or "", message["content"])
    status, got = http(url, {**base, "messages": [QUESTION], "reasoning_format": "yes"})
    assert status == 400 and got["error"]["param"] == "reasoning_format"


def test_a_template_that_opens_the_reasoning_makes_the_whole_reply_reasoning(tmp_path, vocab_gguf):
    """A model whose template ends the prompt with `<think>` (DeepSeek-R1's): the reply starts with it,
    so asked with "none" a client gets the whole reasoning to fold; a reply that never closes it (a
    random model) is all reasoning when split."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engines"))
    import engine_models as em
    model = em.random_model(tmp_path / "r1.gguf", vocab_gguf, em.R1_LIKE_TEMPLATE)
    s = start_server(model, library_root=tmp_path / "lib")
    try:
        url = f"{s.url}/v1/chat/completions"
        body = {"temperature": 0, "max_tokens": 8, "messages": [QUESTION]}
        status, raw = http(url, {**body, "reasoning_format": "none"})
        assert status == 200, raw
        written = raw["choices"][0]["message"]["content"]
        assert written.startswith("<think>\n") and "</think>" not in written and written[8:].strip()
        status, got = http(url, body)
        assert got["choices"][0]["message"]["reasoning_content"] == written[len("<think>"):].lstrip()
        assert got["choices"][0]["message"]["content"] == ""
        assert sse(url, body) == (got["choices"][0]["message"]["reasoning_content"], "")
    finally:
        s.server.stop()

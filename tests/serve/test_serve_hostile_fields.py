"""Every field of a request, given a value of the wrong kind, gets a 4xx that names the problem or is
served; never a 500 and never a dead server. Each field of a valid chat and text completion request
is replaced in turn by each of a set of hostile values (the shapes a fuzzer of request bodies found
the server tripping on: a list where a string is looked up, huge and tiny numbers, nested objects)."""
from __future__ import annotations

import json

import pytest
from serve_testlib import http

HOSTILE = [None, True, -1, 0, 2**64, -2**63, 1e308, 1e-320, "", "x" * 5, "\u0000", [], {}, [1, "a"], {"a": 1},
           [None], [[[]]], 3.5, "NaN", "../../etc/passwd", "shout:2", [{"role": "user"}],
           [{"role": ["user"], "content": "hi"}], [{"role": "user", "content": [{"type": "image_url"}]}],
           [{"name": "shout", "strength": "x"}], [{"name": "../../x", "strength": 1}], {"shout": 1}]
CHAT = {"model": "tiny-deck-demo", "max_tokens": 2, "temperature": 0.5, "top_p": 0.9, "top_k": 5, "min_p": 0.1,
        "repeat_penalty": 1.1, "seed": 1, "stream": False, "stop": ["\n"], "n": 1, "user": "u",
        "presence_penalty": 0, "frequency_penalty": 0, "stream_options": {"include_usage": True},
        "reasoning_format": "none", "chat_template_kwargs": {"enable_thinking": False},
        "adapters": [{"name": "shout", "strength": 0.5}], "max_completion_tokens": 2,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
TEXT = {"model": "tiny-deck-demo", "prompt": "Once upon", "max_tokens": 2, "temperature": 0, "stop": "x",
        "echo": False, "adapters": [{"name": "shout", "strength": 0.5}]}


def variants(base: dict):
    for key in base:
        for value in HOSTILE:
            yield key, {**base, key: value}
    messages = base.get("messages", [])
    for i in range(len(messages)):
        for field in ("role", "content"):
            for value in HOSTILE:
                changed = [dict(m) for m in messages]
                changed[i][field] = value
                yield f"messages[{i}].{field}", {**base, "messages": changed}


@pytest.mark.parametrize("path, base", [("chat/completions", CHAT), ("completions", TEXT)])
def test_no_field_of_any_kind_makes_a_server_error(served, path, base):
    url = f"{served.url}/v1/{path}"
    assert http(url, base)[0] == 200
    seen = set()
    for key, body in variants(base):
        status, got = http(url, body)
        what = f"{key} = {json.dumps(body.get(key, body.get('messages')))[:80]}"
        assert status in (200, 400, 404), (what, status, got)
        if status == 200 and isinstance(got, str):                  # "stream": true
            assert got.rstrip().endswith("data: [DONE]") and '"error"' not in got, what
        elif status == 200:
            answer = got["choices"][0]
            assert isinstance(answer.get("message", answer).get("content", answer.get("text")), str), what
        else:
            error = got["error"]
            assert error["type"] in ("invalid_request_error", "not_found_error") and error["message"], (what, got)
        seen.add(status)
    assert {200, 400} <= seen
    assert http(url, base)[0] == 200 and http(f"{served.url}/health")[1]["failed"] == 0

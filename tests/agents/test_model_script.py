"""The scripted model the real-CLI tests talk to: each API shape gets the step as the tool it offers."""

from __future__ import annotations

import json

import pytest

from tests.support.model_script import ModelScript, finish, write

KEY = "k-123"


def model() -> ModelScript:
    return ModelScript(api_key=KEY, steps=[write("a.txt", "hi\n", input_tokens=7, output_tokens=3), finish("Done.")])


def events(reply) -> list[dict]:
    lines = b"".join(reply.chunks).decode().splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def test_anthropic_gets_a_streamed_write_tool_call_then_the_final_text():
    script = model()
    body = {"model": "m", "stream": True, "tools": [{"name": "Write"}, {"name": "Bash"}],
            "messages": [{"role": "user", "content": "go"}]}
    reply = script.answer("POST", "/v1/messages?beta=true", {"x-api-key": KEY}, json.dumps(body).encode())
    assert reply.content_type == "text/event-stream"
    [delta] = [e for e in events(reply) if e["type"] == "content_block_delta"]
    assert json.loads(delta["delta"]["partial_json"]) == {"file_path": "/workspace/a.txt", "content": "hi\n"}

    body["messages"] += [{"role": "assistant", "content": []}, {"role": "user", "content": []}]
    reply = script.answer("POST", "/v1/messages", {"x-api-key": KEY}, json.dumps(body).encode())
    assert [e["delta"]["text"] for e in events(reply) if e["type"] == "content_block_delta"] == ["Done."]
    assert script.usage_totals == (107, 23)


def test_responses_api_gets_the_write_as_a_shell_command():
    body = {"model": "m", "stream": True, "tools": [{"type": "function", "name": "exec_command"}], "input": []}
    reply = model().answer("POST", "/v1/responses", {"Authorization": f"Bearer {KEY}"}, json.dumps(body).encode())
    [done] = [e for e in events(reply) if e["type"] == "response.output_item.done"]
    assert json.loads(done["item"]["arguments"]) == {"cmd": "printf %s 'hi\n' > a.txt"}
    [completed] = [e for e in events(reply) if e["type"] == "response.completed"]
    assert completed["response"]["usage"]["input_tokens"] == 7


def test_chat_completions_without_tools_gets_the_whole_script_in_aiders_whole_file_format():
    body = {"model": "m", "messages": [{"role": "system", "content": "You are an expert."},
                                       {"role": "user", "content": "go"}]}
    reply = model().answer("POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"},
                           json.dumps(body).encode())
    [message] = [c["message"] for c in json.loads(b"".join(reply.chunks))["choices"]]
    assert message["content"] == "Done.\n\na.txt\n```\nhi\n```\n"


def test_gemini_router_call_gets_json_matching_its_schema_and_costs_nothing():
    script = model()
    schema = {"type": "object", "properties": {"reasoning": {"type": "string"},
                                               "model_choice": {"type": "string", "enum": ["flash", "pro"]}}}
    body = {"contents": [], "generationConfig": {"responseMimeType": "application/json",
                                                 "responseJsonSchema": schema}}
    reply = script.answer("POST", "/v1beta/models/m:generateContent", {"x-goog-api-key": KEY},
                          json.dumps(body).encode())
    text = json.loads(b"".join(reply.chunks))["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text) == {"reasoning": "scripted", "model_choice": "flash"}
    assert script.usage_totals == (0, 0)


@pytest.mark.parametrize(("target", "headers"), [
    ("/v1/messages", {}),
    ("/v1/chat/completions", {"Authorization": "Bearer wrong"}),
    ("/v1beta/models/m:streamGenerateContent?alt=sse", {"x-api-key": KEY}),
])
def test_a_request_without_the_expected_key_is_refused_and_logged(target, headers):
    script = model()
    assert script.answer("POST", target, headers, b"{}").status == 401
    assert [r.status for r in script.requests] == [401]

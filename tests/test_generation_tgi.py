"""ExpertPool against the TGI test server: TGI's rules, faults, resuming, down endpoints."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.tgi_server import FakeModel, Faults, TGITestServer
from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.generation import (
    ChatRequest,
    CompletionRequest,
    EndpointDown,
    ExpertPool,
    GenerationFailed,
    SamplingParams,
)
from warriorcoder.generation.journal import Journal

STOP = ("<|im_end|>",)


def _generation(tmp_path: Path, **overrides: Any) -> GenerationConfig:
    settings = {
        "journal": tmp_path / "journal.sqlite",
        "max_retries": 6,
        "backoff_base_s": 0.005,
        "backoff_max_s": 0.05,
        "timeout_s": 2.0,
    }
    settings.update(overrides)
    return GenerationConfig(**settings)


def _expert(name: str, *urls: str, **extra: Any) -> ExpertConfig:
    return ExpertConfig(name=name, model_id=f"org/{name}", urls=list(urls), **extra)


def _mining(expert: str, n: int, **params: Any) -> list[CompletionRequest]:
    settings = {"max_new_tokens": 40, "temperature": 1.0, "top_p": 0.99, "stop": STOP}
    settings.update(params)
    return [
        CompletionRequest(expert, f"<|im_start|>user\n{i % 7}", SamplingParams(seed=i, **settings))
        for i in range(n)
    ]


def _chats(expert: str, n: int) -> list[ChatRequest]:
    return [
        ChatRequest.user(
            expert, f"question {i}", SamplingParams(max_new_tokens=30, temperature=0.0)
        )
        for i in range(n)
    ]


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_server_applies_tgi_validation_and_error_shape() -> None:
    with TGITestServer({"m": FakeModel("org/m")}) as server:
        url = server.url("m")
        status, body = _post(f"{url}/generate", {"inputs": "hi", "parameters": {"top_p": 1.0}})
        assert status == 422 and body == {
            "error": "`top_p` must be > 0.0 and < 1.0",
            "error_type": "validation",
        }
        five = {"inputs": "hi", "parameters": {"stop": list("abcde")}}
        status, body = _post(f"{url}/generate", five)
        assert status == 422 and "up to 4 stop sequences" in body["error"]
        status, body = _post(
            f"{url}/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "top_p": 1.0},
        )
        assert status == 422 and body["error_type"] == "validation"
        ok = {"inputs": "hi", "parameters": {"max_new_tokens": 3, "seed": 1, "details": True}}
        status, body = _post(f"{url}/generate", ok)
        assert status == 200 and body["details"]["generated_tokens"] == 3
        assert body["details"]["finish_reason"] == "length"
        status, compat = _post(url, ok)
        assert status == 200 and compat == [body], "POST / answers the same, as a list"


def test_huggingface_hub_clients_speak_to_the_test_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import InferenceClient, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # it blocks even local URLs
    with TGITestServer({"m": FakeModel("org/m", model_sha="cafe")}) as server:
        client = InferenceClient(base_url=server.url("m"), api_key="unused")
        out = client.text_generation("hello", details=True, max_new_tokens=5, seed=3)
        assert out.details.generated_tokens == 5 and out.generated_text
        chat = client.chat_completion(
            [{"role": "user", "content": "hi"}], max_tokens=4, seed=1, temperature=0.5
        )
        assert chat.choices[0].message.content and chat.usage.completion_tokens == 4
        info = InferenceClient(server.url("m"), provider="hf-inference").get_endpoint_info()
        assert (info["model_id"], info["model_sha"]) == ("org/m", "cafe")
        assert (
            server.stats.served["m /"] == 1 and server.stats.served["m /v1/chat/completions"] == 1
        )


def test_top_p_one_and_six_stops_pass_validation(tmp_path: Path) -> None:
    stops = ("<s1>", "<s2>", "<s3>", "<s4>", "<s5>", "<s6>")

    def responder(kind: str, payload: dict[str, Any], model: str) -> str:
        return "an instruction<s6> and what the model says after it"

    with TGITestServer({"m": FakeModel("org/m", model_sha="cafe", responder=responder)}) as server:
        requests = [
            *_mining("m", 3, top_p=1.0, stop=stops),
            *[
                ChatRequest.user("m", f"q{i}", SamplingParams(20, 1.0, 1.0, i, stops))
                for i in range(3)
            ],
        ]
        with ExpertPool([_expert("m", server.url("m"))], _generation(tmp_path)) as pool:
            results = pool.run(requests, desc="test")
        assert not server.stats.rejected, "nothing was refused by TGI's validation"
        assert server.stats.total_served == 6
    for result in results:
        assert result.text == "an instruction", "stops past TGI's 4 are applied client-side"
        assert result.finish_reason == "stop_sequence"
        assert (result.model_id, result.model_revision) == ("org/m", "cafe")


def test_twenty_percent_faults_give_every_result_exactly_once(tmp_path: Path) -> None:
    models = {"a": FakeModel("org/a"), "b": FakeModel("org/b")}
    requests = [*_mining("a", 60), *_chats("b", 60)]
    requests = [r for pair in zip(requests[:60], requests[60:], strict=True) for r in pair]

    def run(folder: Path, faults: Faults) -> tuple[list, Any]:
        with TGITestServer(models, faults=faults) as server:
            experts = [_expert("a", server.url("a")), _expert("b", server.url("b"))]
            with ExpertPool(experts, _generation(folder, timeout_s=0.3)) as pool:
                return pool.run(requests, desc="test"), server.stats

    kinds = ("429", "503", "500", "timeout", "drop")
    faulty, stats = run(tmp_path / "faulty", Faults(rate=0.2, kinds=kinds, hang_s=2, seed=1))
    clean, _ = run(tmp_path / "clean", Faults())
    assert sum(stats.faults.values()) >= 15, "faults were injected"
    assert faulty == clean
    assert stats.faults["timeout"] and stats.faults["drop"]
    assert stats.total_served == len(requests), "each (distinct) call answered once"
    assert set(stats.served_inputs.values()) == {1}, "no call was answered twice"


_KILLABLE = textwrap.dedent(
    """
    import json, sys
    from warriorcoder.config import ExpertConfig, GenerationConfig
    from warriorcoder.generation import CompletionRequest, ExpertPool, SamplingParams
    url, journal, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    expert = ExpertConfig(name="m", model_id="org/m", urls=[url])
    requests = [CompletionRequest("m", f"prompt {i}", SamplingParams(30, 1.0, 0.99, i))
                for i in range(n)]
    with ExpertPool([expert], GenerationConfig(journal=journal), progress=False) as pool:
        pool.run(requests, desc="killable")
    """
)


def test_killed_run_restarts_with_exactly_the_missing_calls(tmp_path: Path) -> None:
    n = 240
    model = FakeModel("org/m", max_concurrent_requests=8)
    journal_path = tmp_path / "journal.sqlite"
    with TGITestServer({"m": model}, latency_s=0.02) as server:
        script = tmp_path / "killable.py"
        script.write_text(_KILLABLE)
        child = subprocess.Popen(
            [sys.executable, str(script), server.url("m"), str(journal_path), str(n)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        deadline = time.monotonic() + 60
        while server.stats.total_served < n // 3 and time.monotonic() < deadline:
            assert child.poll() is None, "the client ended before it was killed"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        first = server.stats.total_served
        assert n // 3 <= first < n

        journaled = Journal(journal_path).counts()["ok"]
        assert 0 < journaled <= first
        server.reset_stats()
        requests = [
            CompletionRequest("m", f"prompt {i}", SamplingParams(30, 1.0, 0.99, i))
            for i in range(n)
        ]
        with ExpertPool([_expert("m", server.url("m"))], _generation(tmp_path)) as pool:
            results = pool.run(requests, desc="resumed")
            assert server.stats.total_served == n - journaled, "exactly the missing calls"
            assert set(server.stats.served_inputs.values()) == {1}
            server.reset_stats()
            assert pool.run(requests, desc="finished") == results
            assert server.stats.total_served == 0, "a finished phase sends nothing"
            assert pool.usage()["m"].cached == n + journaled
    assert all(r.ok for r in results) and len({r.text for r in results}) == n


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_down_endpoint_fails_clearly_and_loses_nothing(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    generation = _generation(tmp_path, max_retries=2)
    with TGITestServer({"up": FakeModel("org/up"), "flaky": FakeModel("org/flaky")}) as server:
        experts = [
            _expert("up", server.url("up")),
            _expert("gone", dead),
            _expert("flaky", server.url("flaky")),
        ]
        first = [*_mining("up", 10), *_mining("gone", 4), *_mining("flaky", 6)]
        with ExpertPool(experts, generation) as pool:
            with pytest.raises(EndpointDown, match=dead):
                pool.info("gone")
            with pytest.raises(GenerationFailed) as caught:
                pool.run(first, desc="test")
            failed = caught.value
            assert len(failed.failures) == 4 and {r.expert for r, _ in failed.failures} == {"gone"}
            assert "expert 'gone' stayed down" in str(failed) and dead in str(failed)
            assert "sends only the failed calls" in str(failed)
            assert [r.ok for r in failed.results] == [r.expert != "gone" for r in first]
            assert Journal(generation.journal).counts()["ok"] == 16

            # flaky goes down after it was seen: its journaled results still come back
            server.set_down("flaky")
            served = server.stats.total_served
            second = [*_mining("up", 10), *_mining("flaky", 12)]
            with pytest.raises(GenerationFailed) as caught:
                pool.run(second, desc="test")
            assert server.stats.total_served == served, "cached calls are not sent again"
            results = caught.value.results
            assert all(r.ok for r in results[:16]) and not any(r.ok for r in results[16:])
            assert "expert 'flaky' stayed down" in str(caught.value)

            server.set_down("flaky", down=False)
            assert all(r.ok for r in pool.run(second, desc="test"))
            assert server.stats.total_served == served + 6, "only the missing calls"


def test_load_is_shared_between_urls_within_each_cap(tmp_path: Path) -> None:
    twin = {"model_id": "org/m", "model_sha": "same", "max_concurrent_requests": 4}
    models = {"r1": FakeModel(**twin), "r2": FakeModel(**twin), "r3": FakeModel(**twin)}
    with TGITestServer(models, latency_s=0.02) as server:
        wide = _expert("wide", server.url("r1"), server.url("r2"))
        narrow = _expert("narrow", server.url("r3"), max_concurrency=2)
        with ExpertPool([wide, narrow], _generation(tmp_path)) as pool:
            pool.run([*_mining("wide", 80), *_chats("narrow", 20)], desc="test")
            assert pool.info("narrow").max_concurrent_requests == 2
        calls = server.stats.served
        assert calls["r1 /generate"] >= 25 and calls["r2 /generate"] >= 25
        assert calls["r3 /v1/chat/completions"] == 20
        assert not server.stats.rejected, "no URL was sent more than its cap"
        assert server.stats.max_in_flight <= 4 + 4 + 2


def test_token_and_headers_reach_the_server_but_never_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WC_TEST_TOKEN", "sekret-token-123")
    monkeypatch.setenv("WC_TEST_HEADERS", '{"X-Org": "acme-secret"}')
    with TGITestServer({"m": FakeModel("org/m")}) as server:
        expert = _expert(
            "m", server.url("m"), token_env="WC_TEST_TOKEN", headers_env="WC_TEST_HEADERS"
        )
        with ExpertPool([expert], _generation(tmp_path)) as pool:
            pool.run(_mining("m", 3), desc="test")
        assert server.stats.headers["Authorization: Bearer sekret-token-123"] == 3
        assert server.stats.headers["X-Org: acme-secret"] == 3
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite*"))
    assert b"sekret" not in stored and b"acme" not in stored

    monkeypatch.delenv("WC_TEST_TOKEN")
    with pytest.raises(ValueError, match="WC_TEST_TOKEN"):
        ExpertPool([expert], _generation(tmp_path))


def test_client_errors_are_recorded_not_retried(tmp_path: Path) -> None:
    with TGITestServer({"m": FakeModel("org/m", max_input_tokens=5)}) as server:
        long_prompt = CompletionRequest("m", "one two three four five six seven", SamplingParams(8))
        with ExpertPool([_expert("m", server.url("m"))], _generation(tmp_path)) as pool:
            with pytest.raises(GenerationFailed) as caught:
                pool.run([long_prompt, *_mining("m", 2)], desc="test")
            assert server.stats.calls["m /generate"] == 3, "the 422 was not retried"
            error = caught.value.failures[0][1]
            assert "HTTP 422" in error and "must have less than 5 tokens" in error
            assert pool.usage()["m"].failures == 1
        assert Journal(tmp_path / "journal.sqlite").counts() == {"ok": 2, "failed": 1}


def test_usage_counts_tokens_and_duplicates_are_sent_once(tmp_path: Path) -> None:
    with TGITestServer({"m": FakeModel("org/m")}) as server:
        requests = [*_chats("m", 5), *_chats("m", 5)]
        with ExpertPool([_expert("m", server.url("m"))], _generation(tmp_path)) as pool:
            results = pool.run(requests, desc="test")
            usage = pool.usage()["m"]
        assert server.stats.total_served == 5
    assert results[:5] == results[5:]
    assert usage.requests == 5 and usage.cached == 0
    assert usage.generated_tokens == sum(r.generated_tokens for r in results[:5]) > 0
    assert usage.prompt_tokens == sum(r.prompt_tokens for r in results[:5]) > 0


def test_run_works_inside_a_running_loop_and_from_threads(tmp_path: Path) -> None:
    with TGITestServer({"m": FakeModel("org/m")}) as server:
        with ExpertPool([_expert("m", server.url("m"))], _generation(tmp_path)) as pool:
            before = threading.active_count()

            async def inside_a_loop() -> list:
                return pool.run(_mining("m", 4), desc="test")

            from_loop = asyncio.run(inside_a_loop())
            with ThreadPoolExecutor(2) as executor:
                from_threads = list(
                    executor.map(lambda n: pool.run(_mining("m", n), desc="t"), [4, 6])
                )
            assert from_threads[0] == from_loop and from_threads[1][:4] == from_loop
            time.sleep(0.1)
            assert threading.active_count() <= before, "no event loop thread is left behind"
        assert server.stats.total_served == 6


def test_progress_bar_only_when_asked_or_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TGITestServer({"m": FakeModel("org/m")}) as server:
        expert = _expert("m", server.url("m"))
        with ExpertPool([expert], _generation(tmp_path / "quiet")) as pool:
            pool.run(_mining("m", 3), desc="quiet phase")  # stderr is not a terminal here
        assert "quiet phase" not in capsys.readouterr().err
        with ExpertPool([expert], _generation(tmp_path / "shown"), progress=True) as pool:
            pool.run(_mining("m", 3), desc="shown phase")
    err = capsys.readouterr().err
    assert "shown phase" in err and "3/3" in err
    assert "in_flight=0" in err and "failed=0" in err and "tok_s=" in err

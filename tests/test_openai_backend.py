"""The OpenAI-compatible backend against the OpenAI protocol test server: the server's shape
(checked with the real `openai` client), field mapping, revisions, faults, errors, guided
decoding per server, and one pool with experts on TGI and OpenAI servers through `select`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import OpenAITestServer
from tests.support.tgi_server import FakeModel, Faults, TGITestServer, arena_responder
from warriorcoder.builders import PHASES
from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.errors import (
    ConfigError,
    EndpointDownError,
    MissingSecretError,
    UnsupportedFeatureError,
)
from warriorcoder.generation import (
    ChatRequest,
    CompletionRequest,
    ExpertPool,
    GenerationFailed,
    SamplingParams,
)
from warriorcoder.hub import open_store
from warriorcoder.runner import run_phase
from warriorcoder.scoring.verdicts import verdict_regex

STOP = ("<|im_end|>",)


def _generation(tmp_path: Path, **overrides: Any) -> GenerationConfig:
    settings = {"journal": tmp_path / "journal.sqlite", "max_retries": 6,
                "backoff_base_s": 0.005, "backoff_max_s": 0.05, "timeout_s": 2.0}
    settings.update(overrides)
    return GenerationConfig(**settings)


def _expert(name: str, *urls: str, **extra: Any) -> ExpertConfig:
    return ExpertConfig(name=name, model_id=f"org/{name}", urls=list(urls), api="openai", **extra)


def _mining(expert: str, n: int, **params: Any) -> list[CompletionRequest]:
    settings = {"max_new_tokens": 40, "temperature": 1.0, "top_p": 0.99, "stop": STOP}
    settings.update(params)
    return [CompletionRequest(expert, f"<|im_start|>user\n{i % 7}",
                              SamplingParams(seed=i, **settings)) for i in range(n)]


def _chats(expert: str, n: int, **params: Any) -> list[ChatRequest]:
    settings = {"max_new_tokens": 30, "temperature": 0.0}
    settings.update(params)
    return [ChatRequest.user(expert, f"question {i}", SamplingParams(**settings))
            for i in range(n)]


def test_the_openai_client_speaks_to_the_test_server() -> None:
    openai = pytest.importorskip("openai")
    with OpenAITestServer({"m": FakeModel("org/m")}) as server:
        client = openai.OpenAI(base_url=f"{server.url('m')}/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["org/m"]
        done = client.completions.create(model="org/m", prompt="hello", max_tokens=5, seed=1)
        assert done.choices[0].text and done.choices[0].finish_reason == "length"
        assert done.usage.completion_tokens == 5
        chat = client.chat.completions.create(
            model="org/m", messages=[{"role": "user", "content": "hi"}], max_tokens=4, seed=2)
        assert chat.choices[0].message.content and chat.usage.prompt_tokens > 0
        with pytest.raises(openai.BadRequestError, match="top_p must be in"):
            client.completions.create(model="org/m", prompt="x", top_p=1.5)
        with pytest.raises(openai.BadRequestError, match="Unrecognized request argument"):
            client.completions.create(model="org/m", prompt="x", extra_body={"regex": "a"})
        root = openai.OpenAI(base_url=f"{server.base}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            root.completions.create(model="org/other", prompt="x")
        server.models["m"].max_concurrent_requests = 0  # every call is over the cap
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model="org/m", prompt="x")


def test_fields_are_mapped_without_tgi_rules_and_stops_apply_client_side(tmp_path: Path) -> None:
    stops = ("<s1>", "<s2>", "<s3>", "<s4>", "<s5>", "<s6>")

    def responder(kind: str, payload: dict[str, Any], model: str) -> str:
        return "an instruction<s6> and what the model says after it"

    with OpenAITestServer({"m": FakeModel("org/m", responder=responder)}) as server:
        requests = [*_mining("m", 2, top_p=1.0, stop=stops),
                    *_chats("m", 2, stop=stops, temperature=0.0, top_p=1.0)]
        expert = _expert("m", f"{server.url('m')}/v1", revision="abc123")
        with ExpertPool([expert], _generation(tmp_path)) as pool:
            results = pool.run(requests, desc="test")
            info = pool.info("m")
        assert not server.stats.rejected, "nothing was refused"
        completion, chat = server.bodies[0], server.bodies[-1]
    assert completion["prompt"] == requests[0].prompt, "the raw prompt, verbatim"
    assert completion["model"] == "org/m", "the model /v1/models lists"
    assert (completion["temperature"], completion["seed"]) == (1.0, 0)
    assert "top_p" not in completion, "1.0 is every server's default: not sent (TGI refuses it)"
    assert completion["max_tokens"] == 40 and completion["stop"] == list(stops[:4])
    assert chat["messages"] == [{"role": "user", "content": "question 1"}]
    assert chat["temperature"] == 0.0 and "top_p" not in chat
    for result in results:
        assert result.text == "an instruction", "stops past the 4 sent are applied here"
        assert result.finish_reason == "stop_sequence"
        assert result.generated_tokens > 0 and result.prompt_tokens > 0
    assert (info.model_id, info.model_revision, info.revision_source) == (
        "org/m", "abc123", "config")
    assert {(r.model_id, r.model_revision) for r in results} == {("org/m", "abc123")}


def test_served_model_and_revision_come_from_the_server_or_the_config(tmp_path: Path) -> None:
    models = {"a": FakeModel("org/a", model_sha="sha-a"), "b": FakeModel("org/b")}
    with OpenAITestServer(models, report_revision=True) as server:
        listed = _expert("a", server.base)  # model_id org/a is among the two listed
        aliased = ExpertConfig(name="alias", model_id="org/real-name", urls=[server.base],
                               api="openai", served_model="org/b")
        unclear = ExpertConfig(name="unclear", model_id="org/real-name", urls=[server.base],
                               api="openai")
        with ExpertPool([listed, aliased, unclear], _generation(tmp_path)) as pool:
            assert (pool.info("a").model_revision, pool.info("a").revision_source) == (
                "sha-a", "server")
            results = pool.run([*_chats("a", 1), *_chats("alias", 1)], desc="t")
            assert pool.info("alias").model_id == "org/real-name"
            with pytest.raises(ConfigError, match="served_model"):
                pool.info("unclear")
        assert sorted(b["model"] for b in server.bodies) == ["org/a", "org/b"]
        assert all(r.ok for r in results)
    with (OpenAITestServer({"m": FakeModel("org/m")}) as server,
          ExpertPool([_expert("m", server.url("m"))], _generation(tmp_path / "2")) as pool):
        info = pool.info("m")
    assert (info.model_revision, info.revision_source) == ("", "unknown")


def test_twenty_percent_faults_give_every_result_exactly_once(tmp_path: Path) -> None:
    requests = [*_mining("m", 50), *_chats("m", 30)]

    def run(folder: Path, faults: Faults) -> tuple[list, Any]:
        with (OpenAITestServer({"m": FakeModel("org/m")}, faults=faults) as server,
              ExpertPool([_expert("m", server.url("m"))],
                         _generation(folder, timeout_s=0.3)) as pool):
            return pool.run(requests, desc="test"), server.stats

    kinds = ("429", "503", "500", "timeout", "drop")
    faulty, stats = run(tmp_path / "faulty", Faults(rate=0.2, kinds=kinds, hang_s=2, seed=3))
    clean, _ = run(tmp_path / "clean", Faults())
    assert sum(stats.faults.values()) >= 10 and stats.faults["429"]
    assert faulty == clean
    assert stats.total_served == len(requests) and set(stats.served_inputs.values()) == {1}


def test_a_400_is_recorded_with_its_message_and_not_retried(tmp_path: Path) -> None:
    with OpenAITestServer({"m": FakeModel("org/m", max_total_tokens=20)}) as server:
        too_long = CompletionRequest("m", "one two three four five six seven", SamplingParams(16))
        with ExpertPool([_expert("m", server.url("m"))], _generation(tmp_path)) as pool:
            with pytest.raises(GenerationFailed) as caught:
                pool.run([too_long, *_mining("m", 2, max_new_tokens=5)], desc="test")
            assert server.stats.calls["m /v1/completions"] == 3, "the 400 was not retried"
            error = caught.value.failures[0][1]
            assert "HTTP 400" in error and "maximum context length is 20" in error
            # the opt-in contract: the same run returns the results, the failed one not ok
            results = pool.run([too_long, *_mining("m", 2, max_new_tokens=5)], desc="again",
                               allow_failures=True)
            assert [r.ok for r in results] == [False, True, True]
            assert server.stats.calls["m /v1/completions"] == 4, "only the failed call again"


def test_bearer_token_is_sent_and_an_unset_one_names_expert_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WC_OPENAI_TOKEN", "sk-secret-456")
    with OpenAITestServer({"m": FakeModel("org/m")}) as server:
        expert = _expert("m", server.url("m"), token_env="WC_OPENAI_TOKEN")
        with ExpertPool([expert], _generation(tmp_path)) as pool:
            pool.run(_chats("m", 2), desc="test")
        assert server.stats.headers["Authorization: Bearer sk-secret-456"] == 2
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite*"))
    assert b"sk-secret" not in stored
    monkeypatch.delenv("WC_OPENAI_TOKEN")
    with pytest.raises(MissingSecretError, match="expert 'm'.*WC_OPENAI_TOKEN"):
        ExpertPool([expert], _generation(tmp_path))


def test_a_down_openai_endpoint_is_an_endpoint_down_error(tmp_path: Path) -> None:
    with OpenAITestServer({"m": FakeModel("org/m")}) as server:
        server.set_down("m")
        expert = _expert("m", server.url("m"))
        with (ExpertPool([expert], _generation(tmp_path, max_retries=1)) as pool,
              pytest.raises(EndpointDownError, match="HTTP 503")):
            pool.info("m")


@pytest.mark.parametrize("flavor, field", [
    ("vllm", "structured_outputs"), ("vllm-legacy", "guided_regex"), ("sglang", "regex"),
    ("llama.cpp", "grammar"),
])
def test_each_server_gets_the_regex_in_its_own_field(tmp_path: Path, flavor: str, field: str):
    grammar = {"type": "regex", "value": verdict_regex(40)}
    with OpenAITestServer({"m": FakeModel("org/m")}, flavor=flavor) as server:
        expert = _expert("m", server.url("m"), guided_decoding=flavor)
        with ExpertPool([expert], _generation(tmp_path)) as pool:
            pool.run([*_chats("m", 1, grammar=grammar),
                      *_mining("m", 1, grammar=grammar)], desc="guided")
        assert len(server.constraints) == 2
    sent = server.constraints[0][field]
    if flavor == "vllm":
        assert sent == {"regex": grammar["value"]}
    elif flavor == "llama.cpp":
        assert sent.startswith("root ::= ") and '"\\x0A\\x5B\\x5B"' in sent  # GBNF
    else:
        assert sent == grammar["value"]


def test_a_constraint_a_server_cannot_take_fails_before_any_call(tmp_path: Path) -> None:
    grammar = {"type": "regex", "value": verdict_regex(40)}
    with OpenAITestServer({"m": FakeModel("org/m")}, flavor="vllm") as server:
        plain = _expert("m", server.url("m"))  # no guided_decoding: "none"
        with ExpertPool([plain], _generation(tmp_path)) as pool:
            with pytest.raises(UnsupportedFeatureError, match="expert 'm'.*guided_decoding"):
                pool.run([*_chats("m", 3), *_chats("m", 1, grammar=grammar)], desc="judge")
            wrong = {"type": "regex", "value": "(?<=a)b"}
            llama = _expert("m", server.url("m"), guided_decoding="llama.cpp")
            with (ExpertPool([llama], _generation(tmp_path / "2")) as other,
                  pytest.raises(UnsupportedFeatureError, match="GBNF")):
                other.run(_chats("m", 1, grammar=wrong), desc="judge")
        assert server.stats.total_served == 0, "nothing was sent"


def test_one_pool_with_experts_on_tgi_and_openai_servers_runs_to_select(tmp_path: Path) -> None:
    from tests.support.sim_instructions import sim_config

    models = {name: FakeModel(f"sim/{name}", responder=arena_responder)
              for name in ("t1", "t2", "o1", "o2")}
    with (TGITestServer({k: models[k] for k in ("t1", "t2")}) as tgi,
          OpenAITestServer({k: models[k] for k in ("o1", "o2")}, flavor="vllm") as oai):
        urls = {"t1": tgi.url("t1"), "t2": tgi.url("t2"),
                "o1": f"{oai.url('o1')}/v1", "o2": oai.url("o2")}
        config = sim_config(tmp_path, urls, compress_size=4)
        for expert in config.experts:
            if expert.name.startswith("o"):
                expert.api = "openai"
                expert.guided_decoding = "vllm"
                expert.revision = f"rev-{expert.name}"
        config.judge.constrained_verdicts = True
        config.judge.max_new_tokens = 64
        config.battle.max_new_tokens = 40
        config.select.elo_permutations = 5
        config.select.bootstrap_rounds = 5
        store = open_store(config.hub)
        with ExpertPool.from_config(config) as pool:
            for phase in PHASES:
                run_phase(phase, config, store=store, pool=pool)
            infos = {name: pool.info(name) for name in urls}
        served = {**oai.stats.served, **tgi.stats.served}
        assert served["o1 /v1/completions"] and served["o2 /v1/chat/completions"]
        assert served["t1 /generate"] and served["t2 /v1/chat/completions"]
        assert any("structured_outputs" in c for c in oai.constraints), "verdicts constrained"
    assert {n: i.revision_source for n, i in infos.items()} == {
        "t1": "server", "t2": "server", "o1": "config", "o2": "config"}
    votes = store.load("votes", store.latest("votes").version)
    judges = set(votes["judge"])
    assert judges & {"o1", "o2"} and judges & {"t1", "t2"}, "both kinds of server judged"
    assert all(v in ("A", "B", "Tie") for v in votes["verdict"])
    final = store.load("sft_final", store.latest("sft_final").version)
    assert len(final) > 0
    card = store.read_card("votes", store.latest("votes").version)
    assert "| o1 | `sim/o1-coder` | `rev-o1` | config |" in card, "model and revision source"
    assert f"| t1 | `sim/t1` | `{models['t1'].model_sha}` | server |" in card


def test_the_tgi_rules_server_refuses_top_p_one_as_tgi_does() -> None:
    openai = pytest.importorskip("openai")
    with OpenAITestServer({"m": FakeModel("org/m")}, tgi_rules=True) as server:
        client = openai.OpenAI(base_url=f"{server.url('m')}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            client.chat.completions.create(
                model="org/m", messages=[{"role": "user", "content": "hi"}], top_p=1.0)
        assert refused.value.response.json() == {  # TGI's error shape, not OpenAI's
            "error": "Input validation error: `top_p` must be > 0.0 and < 1.0",
            "error_type": "validation"}
        chat = client.chat.completions.create(
            model="org/m", messages=[{"role": "user", "content": "hi"}], top_p=0.99)
        assert chat.choices[0].message.content
    assert server.stats.rejected == {"validation": 1}


def test_an_openai_arena_on_tgi_v1_routes_runs_mine_to_select(tmp_path: Path) -> None:
    """`api: openai` experts on servers with TGI's rules: no call carries top_p 1.0 (the
    mining grid holds it, the filter, battle and judge calls use it), so none is refused."""
    from tests.support.sim_instructions import sim_config

    names = ("a", "b", "c")
    models = {n: FakeModel(f"sim/{n}", responder=arena_responder) for n in names}
    with OpenAITestServer(models, tgi_rules=True) as server:
        config = sim_config(tmp_path, {n: f"{server.url(n)}/v1" for n in names},
                            compress_size=3)
        for expert in config.experts:
            expert.api = "openai"
        config.battle.max_new_tokens = 40
        config.judge.max_new_tokens = 64
        config.select.elo_permutations = 3
        config.select.bootstrap_rounds = 3
        store = open_store(config.hub)
        with ExpertPool.from_config(config) as pool:
            for phase in PHASES:
                run_phase(phase, config, store=store, pool=pool)
        assert not server.stats.rejected, dict(server.stats.rejected)
        sent = [b.get("top_p") for b in server.bodies]
    assert 1.0 not in sent and {0.99, 0.995} <= set(sent), "the grid's other top_p are sent"
    assert sent.count(None) > len(sent) // 3, "top_p 1.0 calls went out without the field"
    assert len(store.load("sft_final", store.latest("sft_final").version)) == 3

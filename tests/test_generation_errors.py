"""The generation layer's errors: every one a user can fix is a `WarriorcoderError` that names
the expert and what to do; the old names stay importable; regex -> GBNF refuses what it cannot
convert."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tgi_server import FakeModel, TGITestServer
from warriorcoder import errors
from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.generation import (
    ChatRequest,
    EndpointDown,
    ExpertPool,
    GenerationFailed,
    SamplingParams,
    TemplateError,
)
from warriorcoder.generation.guided import regex_to_gbnf
from warriorcoder.scoring.difficulty import score_regex
from warriorcoder.scoring.verdicts import verdict_regex
from warriorcoder.secrets import read_secret


def _generation(tmp_path: Path) -> GenerationConfig:
    return GenerationConfig(journal=tmp_path / "j.sqlite", max_retries=1, backoff_base_s=0.01)


def test_old_names_are_the_hierarchys_classes() -> None:
    assert EndpointDown is errors.EndpointDownError
    assert TemplateError is errors.TemplateError
    assert issubclass(GenerationFailed, errors.GenerationError)
    assert issubclass(GenerationFailed, errors.WarriorcoderError)


def test_unset_or_malformed_secrets_name_the_expert_and_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WC_UNSET_TOKEN", raising=False)
    expert = ExpertConfig(name="qwen", model_id="org/q", urls=["http://127.0.0.1:9"],
                          token_env="WC_UNSET_TOKEN")
    with pytest.raises(errors.MissingSecretError) as caught:
        ExpertPool([expert], _generation(tmp_path))
    assert str(caught.value).startswith("expert 'qwen': token_env names")
    assert "WC_UNSET_TOKEN" in str(caught.value) and "export it" in str(caught.value)

    monkeypatch.setenv("WC_BAD_HEADERS", "not json")
    headers = expert.model_copy(update={"token_env": None, "headers_env": "WC_BAD_HEADERS"})
    with pytest.raises(errors.MissingSecretError, match="qwen.*WC_BAD_HEADERS.*JSON object"):
        ExpertPool([headers], _generation(tmp_path))
    monkeypatch.setenv("WC_SOME_TOKEN", "abc")
    assert read_secret("WC_SOME_TOKEN", "hub.token_env") == "abc"


def test_a_tokenizer_that_cannot_load_offline_says_to_set_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expert = ExpertConfig(name="remote", model_id="org/never-downloaded-model-xyz",
                          urls=["http://127.0.0.1:9"])
    with ExpertPool([expert], _generation(tmp_path)) as pool:
        with pytest.raises(errors.ModelLoadError) as caught:
            pool.tokenizer("remote")
        with pytest.raises(errors.TemplateError, match="chat_template"):
            pool.mining_prefix("remote", None)
    message = str(caught.value)
    assert "expert 'remote'" in message and "org/never-downloaded-model-xyz" in message
    assert "set `tokenizer:` to a local tokenizer folder" in message


def test_an_unknown_grammar_type_is_refused_before_any_call(tmp_path: Path) -> None:
    with TGITestServer({"m": FakeModel("org/m")}) as server:
        expert = ExpertConfig(name="m", model_id="org/m", urls=[server.url("m")])
        odd = ChatRequest.user("m", "x", SamplingParams(8, grammar={"type": "ebnf", "value": ""}))
        with (ExpertPool([expert], _generation(tmp_path)) as pool,
              pytest.raises(errors.UnsupportedFeatureError, match="expert 'm'.*ebnf")):
            pool.run([odd], desc="t")
        assert server.stats.total_served == 0


def test_regex_to_gbnf_converts_the_pipelines_constraints() -> None:
    assert regex_to_gbnf(verdict_regex(50)) == (
        'root ::= [^\\x5B\\x5D\\x60\\x7E]{1,50} "\\x0A\\x5B\\x5B" (("A" | "B" | "Tie")) '
        '"\\x5D\\x5D"\n')
    assert regex_to_gbnf(score_regex(40)) == (
        'root ::= [^\\x0A0-9]{1,40} "\\x0AScore\\x3A " (("10" | [1-9]))\n')
    assert regex_to_gbnf(r"^a.b\d+(?:x|yz)*?[a-c\-]?$") == (
        'root ::= "a" [^\\x0A] "b" [0-9]+ (("x" | "yz"))* [a-c\\x2D]?\n')


@pytest.mark.parametrize("pattern, what", [
    (r"(?<=a)b", "group extension"), (r"(a)\1", "escape"), (r"a^b", "anchor"),
    (r"[a", "unclosed"), (r"a{x}", "malformed"), (r"a)", "unbalanced"), (r"*a", "quantifier"),
])
def test_regex_to_gbnf_refuses_what_it_cannot_convert(pattern: str, what: str) -> None:
    with pytest.raises(errors.UnsupportedFeatureError, match=what):
        regex_to_gbnf(pattern)

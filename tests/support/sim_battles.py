"""Simulated experts for the battle phases, as responders of the TGI test server.

Each expert has a known strength. Its answer to an instruction is deterministic text that
opens with a signature only the simulation can read (the judges never see names); a share
`long_answer_rate` of answers run past any length limit, and a share `marker_rate` quote a
`[[A]]` token inside the answer (it must not be taken for a verdict).

Judges read the two answers out of the paper's judge prompt. An honest judge answers Tie with
probability `tie_rate`, otherwise prefers the stronger author's answer with probability
`accuracy` (a coin for equal strengths). A judge in `position_bias` ignores the content and
picks the first-shown answer with that probability (never a tie). A share `invalid_rate` of
replies (fresh per seed, so a retry can succeed) give no parsable verdict, and battles on a
share `unjudgeable_rate` of instructions never get one. With a `grammar` (TGI guided decoding)
every reply is valid and matches the regex. All draws are functions of (judge, prompt, seed).

    sim = BattleSim({"a": 0.9, "b": 0.5, "c": 0.1}, position_bias={"c": 0.8})
    models = {name: FakeModel(f"sim/{name}", responder=sim.responder) for name in sim.strengths}

`battle_arena(root, sim)` serves them and gives the matching config and hub store;
`publish_parent` puts a hand-made parent version (e.g. `compressed_rows(miners)`) into it.
For the whole pipeline, pass `sim.responder` as the `fallback` of `sim_instructions`' sim.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import datasets

from warriorcoder.scoring.verdicts import JUDGE_PROMPT

if TYPE_CHECKING:
    from tests.support.tgi_server import TGITestServer
    from warriorcoder.config import ArenaConfig
    from warriorcoder.hub import HubStore, VersionRef

Responder = Callable[[str, dict[str, Any], str], str]
Verdict = Literal["A", "B", "Tie"]

_JUDGE_OPENING = JUDGE_PROMPT.split("{instruction}")[0]
_ANSWER = re.compile(
    r"\[\[The Start of Assistant (?P<side>[AB])'s Answer\]\]\n(?P<text>.*?)\n"
    r"\[\[The End of Assistant (?P=side)'s Answer\]\]",
    re.DOTALL,
)
_QUESTION = re.compile(r"\[\[User Question\]\]\n(?P<text>.*?)\n\[\[The Start of Assistant A's",
                       re.DOTALL)
_SIGNATURE = re.compile(r"^Solution (?P<sig>[0-9a-f]{10})\b")
_PROSE = (
    "iterate over the input once and keep a running total in a dictionary keyed by the "
    "normalised value then sort the keys and return the first item that satisfies the "
    "condition while handling the empty case explicitly with a guard clause"
)
_WORDS = tuple(_PROSE.split(" "))
_INVALID_REPLIES = (
    "Both answers have merits and I cannot decide between them.",
    "Assistant A is clearer, but assistant B is more complete: [[A]] or [[B]], it depends.",
    "The first answer handles the edge cases; the second one is shorter.",
)


def _draw(*parts: Any) -> random.Random:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass
class BattleSim:
    """Answers and verdicts of simulated experts; see the module doc."""

    strengths: Mapping[str, float]
    accuracy: float = 0.8
    tie_rate: float = 0.05
    position_bias: Mapping[str, float] = field(default_factory=dict)
    invalid_rate: float = 0.1
    unjudgeable_rate: float = 0.0
    long_answer_rate: float = 0.05
    marker_rate: float = 0.1
    seed: int = 0
    model_names: Mapping[str, str] = field(default_factory=dict)
    """Test-server model name -> expert name, where they differ."""
    fallback: Responder | None = None
    """Where `generate` (completion) requests go; default: the test server's own responder."""
    judge_calls: Counter[str] = field(default_factory=Counter)
    """Judge requests answered, per judge."""
    answer_calls: Counter[str] = field(default_factory=Counter)
    """Answer requests answered, per expert."""
    on_judge_call: Callable[[int], None] | None = None
    """Called with the running total of judge requests before each is answered (a test can
    kill a client process there, with that call still unanswered)."""

    def __post_init__(self) -> None:
        for name, rate in [("accuracy", self.accuracy), ("tie_rate", self.tie_rate),
                           ("invalid_rate", self.invalid_rate),
                           ("unjudgeable_rate", self.unjudgeable_rate),
                           ("long_answer_rate", self.long_answer_rate),
                           ("marker_rate", self.marker_rate),
                           *self.position_bias.items()]:
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {rate}")
        self._lock = threading.Lock()
        self._authors = {self.signature(name): name for name in self.strengths}

    # ---- the responder --------------------------------------------------------------------

    def responder(self, kind: str, payload: dict[str, Any], model_name: str) -> str:
        """A `tgi_server.Responder` for every simulated expert."""
        expert = self.model_names.get(model_name, model_name)
        if kind != "chat":
            return self._fallback(kind, payload, model_name)
        messages = payload.get("messages") or []
        content = str(messages[-1].get("content", "")) if messages else ""
        seed = payload.get("seed")
        if content.startswith(_JUDGE_OPENING):
            with self._lock:
                self.judge_calls[expert] += 1
                total = sum(self.judge_calls.values())
            if self.on_judge_call is not None:
                self.on_judge_call(total)
            return self.judge(expert, content, seed, constrained=payload.get("response_format"))
        with self._lock:
            self.answer_calls[expert] += 1
        return self.answer(expert, content, seed, int(payload.get("max_tokens") or 100))

    def _fallback(self, kind: str, payload: dict[str, Any], model_name: str) -> str:
        if self.fallback is not None:
            return self.fallback(kind, payload, model_name)
        from tests.support.tgi_server import default_responder

        return default_responder(kind, payload, model_name)

    # ---- answers --------------------------------------------------------------------------

    def signature(self, expert: str) -> str:
        """The hidden tag that opens every answer of `expert`."""
        return hashlib.sha256(f"{self.seed}:{expert}".encode()).hexdigest()[:10]

    def author_of(self, answer: str) -> str | None:
        """The expert who wrote an answer (None for text the simulation did not write)."""
        match = _SIGNATURE.match(answer)
        return self._authors.get(match["sig"]) if match else None

    def is_long(self, expert: str, instruction: str, seed: Any) -> bool:
        """Whether this answer runs past any length limit."""
        return _draw("long", self.seed, expert, instruction, seed).random() < self.long_answer_rate

    def answer(self, expert: str, instruction: str, seed: Any, max_tokens: int) -> str:
        """An answer: signature line, some words, maybe a quoted `[[A]]`; long ones never end."""
        rng = _draw("answer", self.seed, expert, instruction, seed)
        length = max_tokens + 25 if self.is_long(expert, instruction, seed) else rng.randint(8, 24)
        words = " ".join(rng.choice(_WORDS) for _ in range(length))
        marker = ""
        if rng.random() < self.marker_rate:
            marker = "\nIn the output, [[A]] marks an accepted row and [[B]] a rejected one."
        return f"Solution {self.signature(expert)} for this task:{marker}\n{words}"

    # ---- judging --------------------------------------------------------------------------

    def unjudgeable(self, instruction: str) -> bool:
        """Whether no judge ever gives a verdict on battles over this instruction."""
        return _draw("unjudgeable", self.seed, instruction).random() < self.unjudgeable_rate

    def intended(self, judge: str, prompt: str, seed: Any, constrained: bool = False
                 ) -> Verdict | None:
        """The verdict the judge's reply carries (None: a reply without a parsable verdict)."""
        question = _QUESTION.search(prompt)
        answers = {m["side"]: m["text"] for m in _ANSWER.finditer(prompt)}
        if question is None or set(answers) != {"A", "B"}:
            raise ValueError("not a judge prompt of the paper's Table 7 layout")
        rng = _draw("judge", self.seed, judge, prompt, seed)
        invalid = rng.random() < self.invalid_rate or self.unjudgeable(question["text"])
        if invalid and not constrained:
            return None
        if judge in self.position_bias:
            return "A" if rng.random() < self.position_bias[judge] else "B"
        if rng.random() < self.tie_rate:
            return "Tie"
        strength_a = self.strengths.get(self.author_of(answers["A"]) or "", 0.0)
        strength_b = self.strengths.get(self.author_of(answers["B"]) or "", 0.0)
        if strength_a == strength_b:
            return "A" if rng.random() < 0.5 else "B"
        better: Verdict = "A" if strength_a > strength_b else "B"
        worse: Verdict = "B" if better == "A" else "A"
        return better if rng.random() < self.accuracy else worse

    def judge(self, judge: str, prompt: str, seed: Any, constrained: Any = None) -> str:
        """A judge's reply: a short explanation, then the verdict (or none)."""
        regex = constrained.get("value") if isinstance(constrained, dict) else None
        verdict = self.intended(judge, prompt, seed, constrained=regex is not None)
        rng = _draw("reply", self.seed, judge, prompt, seed)
        if regex is not None:  # what guided decoding would produce: a match of the regex
            explanation = "Both answers address the question; one is more accurate."
            for separator in ("\n", " ", ""):
                reply = f"{explanation}{separator}[[{verdict}]]"
                if re.fullmatch(regex, reply):
                    return reply
            raise ValueError(f"the simulation has no reply matching the grammar {regex!r}")
        if verdict is None:
            return rng.choice(_INVALID_REPLIES)
        answers = {m["side"]: m["text"] for m in _ANSWER.finditer(prompt)}
        quoted = next((line for text in answers.values() for line in text.splitlines()
                       if "[[" in line), None)
        quote = f"> {quoted}\n" if quoted else ""
        return (
            "Assistant A and assistant B both give working approaches; I compared their "
            f"accuracy and how directly they answer.\n{quote}\nFinal verdict: [[{verdict}]]"
        )


# ---- a ready arena: test server, config, hub store and a hand-made `compressed` -----------


def compressed_rows(miners: Sequence[str]) -> list[dict[str, Any]]:
    """A `compressed`-like dataset: instruction i mined by `miners[i]`."""
    return [{"id": f"ins{i:05d}", "expert": miner, "kcenter_rank": i,
             "instruction": f"Write a Python function for task {i}: parse, validate and sum "
                            f"the numbers in a line of text (variant {i % 7})."}
            for i, miner in enumerate(miners)]


def publish_parent(store: HubStore, phase: str, rows: Sequence[Mapping[str, Any]],
                   features: datasets.Features | None = None) -> VersionRef:
    """Publish hand-made rows as a version of `phase`'s dataset, with a minimal card."""
    from warriorcoder.builders import get_phase

    dataset = datasets.Dataset.from_list(list(rows), features=features)
    return store.publish(get_phase(phase).dataset, dataset,
                         lambda ref: f"---\npretty_name: hand-made {phase}\n---\n# {phase}\n")


@dataclass
class BattleArena:
    """A TGI test server serving `BattleSim` experts, the arena config pointing at it (hub
    store and journal under the root folder), and the store."""

    server: TGITestServer
    config: ArenaConfig
    sim: BattleSim
    store: HubStore


@contextmanager
def battle_arena(root: Path, sim: BattleSim, **sections: dict[str, Any]) -> Iterator[BattleArena]:
    """Serve every expert of `sim.strengths`; `sections` update the config's phase sections
    (small token limits and bootstrap sizes by default, so a run takes seconds)."""
    from tests.support.tgi_server import FakeModel, TGITestServer
    from warriorcoder.config import ArenaConfig
    from warriorcoder.hub import open_store

    names = list(sim.strengths)
    models = {name: FakeModel(f"sim/{name}", responder=sim.responder) for name in names}
    with TGITestServer(models) as server:
        data: dict[str, Any] = {
            "hub": {"root": str(root / "hub"), "namespace": "sim"},
            "experts": [{"name": n, "model_id": f"sim/{n}", "urls": [server.url(n)]}
                        for n in names],
            "generation": {"journal": str(root / "journal.sqlite"), "max_retries": 2},
            "battle": {"max_new_tokens": 40},
            "judge": {"max_new_tokens": 200},
            "select": {"elo_permutations": 20, "bootstrap_rounds": 50},
        }
        for section, values in sections.items():
            data[section] = {**data.get(section, {}), **values}
        config = ArenaConfig.model_validate(data)
        yield BattleArena(server, config, sim, open_store(config.hub))

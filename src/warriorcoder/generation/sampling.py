"""Sampling for the local backend: each request of a batch is sampled with its own
`torch.Generator`, seeded by its seed, inside a logits processor, so a result depends on its own
prompt and seed rather than on its batch (up to the float noise of padding); regex grammars are
followed by guided decoding."""

from __future__ import annotations

from typing import Any

from warriorcoder.errors import UnsupportedFeatureError


def eos_ids(tokenizer: Any, model: Any) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, list | tuple) else [ids] if ids is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def regex_of(grammar: dict[str, Any] | None) -> Any:
    """The compiled pattern of a TGI-style `{"type": "regex", "value": ...}` grammar."""
    if grammar is None:
        return None
    if grammar.get("type") != "regex":
        raise UnsupportedFeatureError(
            f"the local backend supports regex grammars only, not {grammar.get('type')!r}"
        )
    import regex

    return regex.compile(grammar["value"])


class RegexConstraint:
    """Guided decoding for regex grammars: a token is allowed when the text generated with it
    can still grow into a full match (`regex`'s partial matching); EOS only after a full
    match. Candidates are tried most likely first, so the cost is a few checks per token."""

    max_checks = 4096

    def __init__(self, patterns: list[Any], tokenizer: Any, prompt_len: int,
                 eos_ids: list[int]) -> None:
        self.patterns = patterns
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.eos_ids = set(eos_ids)

    def choose(self, row: int, input_ids: Any, ranked: Any, limit: int | None = None
               ) -> int | None:
        """The first allowed token of `ranked` (token ids, best first); None: no constraint;
        -1: none of them is allowed."""
        pattern = self.patterns[row]
        if pattern is None:
            return None
        generated = input_ids[row, self.prompt_len :].tolist()
        if self.eos_ids.intersection(generated):
            return None  # the row has finished; what follows is padding
        complete = pattern.fullmatch(self.tokenizer.decode(generated)) is not None
        for token in ranked[: limit or self.max_checks].tolist():
            if token in self.eos_ids:
                if complete:
                    return token
                continue
            text = self.tokenizer.decode([*generated, token])
            if pattern.fullmatch(text, partial=True) is not None:
                return token
        return -1


class PerRowSampler:
    """A logits processor that samples each row with its own generator (temperature, top-p)
    and leaves only the chosen token possible, so greedy decoding takes it."""

    def __init__(self, temperatures: list[float], top_ps: list[float], seeds: list[int],
                 constraint: RegexConstraint | None = None) -> None:
        import torch

        self.temperatures = temperatures
        self.top_ps = top_ps
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.constraint = constraint

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        chosen = torch.empty(scores.shape[0], dtype=torch.long)
        for row in range(scores.shape[0]):
            logits = scores[row].float()
            temperature = self.temperatures[row]
            if self.constraint is not None and self.constraint.patterns[row] is not None:
                chosen[row] = self._constrained(row, input_ids, logits, temperature)
                continue
            if temperature <= 0:
                chosen[row] = int(torch.argmax(logits))
                continue
            probs = torch.softmax(logits / temperature, dim=-1)
            top_p = self.top_ps[row]
            if top_p < 1.0:
                sorted_probs, order = torch.sort(probs, descending=True)
                keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
                keep[0] = True
                probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
            chosen[row] = int(torch.multinomial(probs, 1, generator=self.generators[row]))
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(scores.shape[0]), chosen] = 0.0
        return forced

    def _constrained(self, row: int, input_ids: Any, logits: Any, temperature: float) -> int:
        """The row's token under its regex: candidates ranked greedily, or for sampling in the
        order of a weighted draw without replacement (so the first allowed one is a sample)."""
        import torch

        if temperature <= 0:
            ranked = torch.argsort(logits, descending=True)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            draws = min(int((probs > 0).sum()), RegexConstraint.max_checks)
            ranked = torch.multinomial(probs, draws, replacement=False,
                                       generator=self.generators[row])
        token = self.constraint.choose(row, input_ids, ranked)
        if token == -1:  # the likely tokens are all ruled out: try every token, best first
            everything = torch.argsort(logits, descending=True)
            token = self.constraint.choose(row, input_ids, everything, limit=len(everything))
        if token is None:
            return int(ranked[0])
        if token == -1:  # nothing continues the match: stop; the reply is recorded as it is
            return min(self.constraint.eos_ids)
        return token

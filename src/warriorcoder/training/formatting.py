"""The training prompt format, its matching chat template, and tokenisation with a prompt mask.

The target (DeepSeekCoder-base) has no chat template, so SFT uses the Magicoder-style format
`{system}\\n\\n@@ Instruction\\n{instruction}\\n\\n@@ Response\\n` + response + eos. The saved
checkpoint carries a Jinja chat template that renders exactly this prompt, so evaluators that
use `apply_chat_template` (EvalPlus, TGI's chat route) prompt the model the way it was trained.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from warriorcoder.errors import ConfigError, InputDatasetError, TrainingError

IGNORE_INDEX = -100
"""Label value the loss ignores (the prompt tokens and padding)."""

REQUIRED_COLUMNS = ("instruction", "response")


@dataclass(frozen=True)
class PromptFormat:
    """A `str.format` template with the fields `{system}` and `{instruction}`, and a system line."""

    template: str
    system: str

    def __post_init__(self) -> None:
        fields = [field for _, field, _, _ in self._parsed() if field is not None]
        unknown = sorted(set(fields) - {"system", "instruction"})
        if unknown or fields.count("instruction") != 1:
            raise ConfigError(
                f"train.prompt_template {self.template!r} must contain `{{instruction}}` exactly "
                f"once and no fields but `{{system}}` and `{{instruction}}` (found {fields}); "
                "write a literal brace as `{{` or `}}`"
            )

    def _parsed(self) -> list[tuple[str, str | None, str | None, str | None]]:
        try:
            return list(string.Formatter().parse(self.template))
        except ValueError as error:
            raise ConfigError(f"train.prompt_template {self.template!r}: {error}") from None

    def prompt(self, instruction: str) -> str:
        """The prompt the model sees for one instruction (the response follows it directly)."""
        return self.template.format(system=self.system, instruction=instruction)

    def chat_template(self) -> str:
        """A Jinja chat template whose render of a user turn + generation prompt is `prompt(x)`.

        A leading system message replaces the trained system line; an assistant turn renders as
        the part of the template after the instruction, its content and the eos token, exactly
        as in training. Each user turn repeats the full template up to the instruction.
        """
        before: list[str] = []
        after: list[str] = []
        target = before
        for literal, field, _, _ in self._parsed():
            if literal:
                target.append("{{ " + _jinja_string(literal) + " }}")
            if field == "system":
                target.append("{{ system }}")
            elif field == "instruction":
                target.append("{{ message['content'] }}")
                target = after
        user_part, response_prefix = "".join(before), "".join(after)
        return (
            "{%- if messages and messages[0]['role'] == 'system' -%}"
            "{%- set system = messages[0]['content'] -%}"
            "{%- set loop_messages = messages[1:] -%}"
            "{%- else -%}"
            "{%- set system = " + _jinja_string(self.system) + " -%}"
            "{%- set loop_messages = messages -%}"
            "{%- endif -%}"
            "{%- for message in loop_messages -%}"
            "{%- if message['role'] == 'user' -%}" + user_part + ""
            "{%- elif message['role'] == 'assistant' -%}"
            + response_prefix
            + "{{ message['content'] }}{{ eos_token }}"
            "{%- else -%}"
            "{{ raise_exception('only user and assistant turns (after an optional system "
            "message) are supported, got ' + message['role']) }}"
            "{%- endif -%}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}" + response_prefix + "{%- endif -%}"
        )


def _jinja_string(text: str) -> str:
    """A Jinja string literal for `text` (Jinja unescapes Python-style escapes)."""
    return repr(text)


@dataclass
class TokenizedData:
    """Training features plus what was dropped and why."""

    dataset: Dataset
    rows_in: int
    dropped_too_long: int
    max_length: int

    @property
    def rows_used(self) -> int:
        return len(self.dataset)


def check_columns(dataset: Dataset, source: str) -> None:
    """Raise a clear error if the SFT columns are missing."""
    missing = [column for column in REQUIRED_COLUMNS if column not in dataset.column_names]
    if missing:
        raise InputDatasetError(
            f"dataset {source} lacks the column(s) {missing} needed for SFT; it has "
            f"{dataset.column_names}. Train on an `sft_final` dataset (written by "
            "`warriorcoder select`), which has `instruction` and `response`."
        )


def encode_example(
    instruction: str, response: str, tokenizer: PreTrainedTokenizerBase, fmt: PromptFormat
) -> dict[str, list[int]]:
    """Token ids and labels of one example; labels are IGNORE_INDEX on the prompt tokens.

    The prompt is tokenised on its own (with the tokenizer's special tokens, e.g. BOS), exactly
    as an evaluator tokenises the chat-template render; the response and eos follow it.
    """
    prompt_ids = tokenizer(fmt.prompt(instruction))["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    response_ids = [*response_ids, tokenizer.eos_token_id]
    return {
        "input_ids": [*prompt_ids, *response_ids],
        "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
    }


def tokenize_dataset(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    fmt: PromptFormat,
    max_length: int,
    source: str = "sft_final",
    num_proc: int | None = None,
) -> TokenizedData:
    """Format and tokenise every row; rows longer than `max_length` are dropped, never cut."""
    check_columns(dataset, source)
    if tokenizer.eos_token_id is None:
        raise TrainingError("the tokenizer has no eos token; SFT appends it to every response")

    def encode(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"input_ids": [], "labels": [], "length": []}
        rows = zip(indices, batch["instruction"], batch["response"], strict=True)
        for index, instruction, response in rows:
            for column, value in (("instruction", instruction), ("response", response)):
                if not isinstance(value, str) or not value.strip():
                    raise InputDatasetError(
                        f"dataset {source} row {index}: `{column}` must be a non-empty string, "
                        f"got {value!r}"
                    )
            example = encode_example(instruction, response, tokenizer, fmt)
            out["input_ids"].append(example["input_ids"])
            out["labels"].append(example["labels"])
            out["length"].append(len(example["input_ids"]))
        return out

    encoded = dataset.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="tokenising sft_final",
    )
    kept = encoded.filter(
        lambda lengths: [length <= max_length for length in lengths],
        input_columns="length",
        batched=True,
        desc=f"dropping rows longer than {max_length} tokens",
    )
    if len(kept) == 0:
        raise ConfigError(
            f"every one of the {len(dataset)} rows of {source} is longer than "
            f"train.max_length={max_length} tokens; raise train.max_length"
        )
    return TokenizedData(
        dataset=kept.remove_columns("length"),
        rows_in=len(dataset),
        dropped_too_long=len(dataset) - len(kept),
        max_length=max_length,
    )

"""EvalPlus's prompts (`evalplus/codegen.py`, `evalplus/provider/`), by how the model is asked.

- `instruct` (a chat model asked through a raw-prompt route: a local model, TGI `/generate`,
  OpenAI `/v1/completions`): the chat template rendered with the user turn and an assistant
  turn pre-filled with the response prefix and an opening ```python fence (`make_raw_chat_prompt`
  of EvalPlus's HF/vLLM providers); the reply is code and stops at the closing fence.
- `chat` (a chat route that cannot pre-fill, e.g. `/v1/chat/completions`): the instruction as
  one user turn, as EvalPlus's OpenAI provider sends it; the reply is sanitised.
- `completion` (a base model, no chat template): the problem's prompt itself, stopped at
  EvalPlus's direct-completion stop strings; the solution is prompt + reply.

Every solution is then `sanitize(code, entry_point)` as EvalPlus's `codegen` does.
"""

from __future__ import annotations

from typing import Any, Literal

from warriorcoder.errors import TemplateError
from warriorcoder.evaluation.benchmarks import Problem

PromptMode = Literal["instruct", "chat", "completion"]
PROMPT_MODES: tuple[PromptMode, ...] = ("instruct", "chat", "completion")

INSTRUCTION_PREFIX = (
    "Please provide a self-contained Python script that solves the following problem in a "
    "markdown code block:"
)
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and "
    "passes corresponding tests:"
)
EOS = ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint("]
_MAGIC_SPLITTER = "-[[]]-this-is-really-our-highest-priority-[[]]-"


def task_prompt(problem: Problem) -> str:
    """The problem text EvalPlus's codegen hands the model: the prompt, stripped, plus newline."""
    return problem.prompt.strip() + "\n"


def instruction(problem: Problem) -> str:
    """The user turn of `make_raw_chat_prompt`."""
    return f"{INSTRUCTION_PREFIX}\n```\n{task_prompt(problem).strip()}\n```\n"


def chat_instruction(problem: Problem) -> str:
    """The user message of EvalPlus's OpenAI chat provider."""
    return INSTRUCTION_PREFIX + f"\n```python\n{task_prompt(problem).strip()}\n```"


def render_instruct_prompt(problem: Problem, tokenizer: Any) -> str:
    """`make_raw_chat_prompt`: the chat template up to the code the assistant writes.

    Renders [user, assistant(response prefix + ```python + splitter)] and cuts at the splitter;
    a template that drops the assistant's text is rendered with the generation prompt and the
    prefix appended instead. The BOS text the template writes is removed (the backend adds it).
    Raises `TemplateError` when the template cannot be rendered."""
    response = f"{RESPONSE_PREFIX}\n```python\n{_MAGIC_SPLITTER}\n```\n"
    messages = [
        {"role": "user", "content": instruction(problem)},
        {"role": "assistant", "content": response},
    ]
    try:
        rendered = tokenizer.apply_chat_template(messages, tokenize=False)
        if _MAGIC_SPLITTER in rendered:
            prompt = rendered.split(_MAGIC_SPLITTER)[0]
        else:
            prompt = tokenizer.apply_chat_template(
                messages[:1], tokenize=False, add_generation_prompt=True
            ) + f"{RESPONSE_PREFIX}\n```python\n"
    except Exception as error:  # jinja errors of a template
        raise TemplateError(f"cannot render the chat template: {error}") from None
    bos = getattr(tokenizer, "bos_token", None)
    if bos and prompt.startswith(bos):
        prompt = prompt[len(bos) :]
    return prompt


def stop_sequences(mode: PromptMode, dataset: str) -> tuple[str, ...]:
    """EvalPlus's stop strings: EOS plus the closing fence (instruct) or the direct-completion
    extras of the dataset (completion)."""
    if mode == "instruct":
        return (*EOS, "\n```\n")
    if mode == "completion":
        extra = (
            ["\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "]
            if dataset == "humaneval"
            else ['\n"""', "\nassert"]
        )
        return (*EOS, *extra)
    return ()


def cut_at_stops(text: str, stops: tuple[str, ...]) -> str:
    """The reply up to its first stop string, tabs as four spaces (EvalPlus's HF provider)."""
    index = min((text.index(stop) for stop in stops if stop in text), default=len(text))
    return text[:index].replace("\t", "    ")


def raw_solution(problem: Problem, reply: str, mode: PromptMode) -> str:
    """The solution before sanitising: prompt + reply for a completion, else the reply."""
    if mode == "completion":
        return task_prompt(problem) + reply
    return reply

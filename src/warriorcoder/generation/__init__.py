"""Experts, chat templates, the backends (TGI, OpenAI-compatible, local), the request journal.

Phase builders call `ExpertPool` (see `pool.py`); the request and result types are in
`types.py`, the backend interface in `backend.py`. `EndpointDown` is the old name of
`errors.EndpointDownError`; `GenerationFailed` and `TemplateError` are defined in `errors` and
kept importable from here."""

from warriorcoder.errors import EndpointDownError as EndpointDown
from warriorcoder.errors import GenerationFailed, TemplateError
from warriorcoder.generation.pool import ExpertPool
from warriorcoder.generation.templates import ChatTemplate
from warriorcoder.generation.types import (
    ChatRequest,
    CompletionRequest,
    ExpertInfo,
    GenerationResult,
    PreQuery,
    ReplyFormat,
    Request,
    SamplingParams,
    TokenUsage,
)

__all__ = [
    "ChatRequest",
    "ChatTemplate",
    "CompletionRequest",
    "EndpointDown",
    "ExpertInfo",
    "ExpertPool",
    "GenerationFailed",
    "GenerationResult",
    "PreQuery",
    "ReplyFormat",
    "Request",
    "SamplingParams",
    "TemplateError",
    "TokenUsage",
]

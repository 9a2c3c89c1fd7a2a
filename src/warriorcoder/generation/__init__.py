"""Experts, chat templates, the backends (TGI, OpenAI-compatible, local), the request journal.

Phase builders call `ExpertPool` (see `pool.py`); the request and result types are in
`types.py`, the backend interface in `backend.py`. `EndpointDown` and `TemplateError` are the
old names of `errors.EndpointDownError` and `errors.TemplateError`; `GenerationFailed` is an
`errors.GenerationError`."""

from warriorcoder.errors import TemplateError
from warriorcoder.generation.pool import EndpointDown, ExpertPool, GenerationFailed
from warriorcoder.generation.templates import ChatTemplate
from warriorcoder.generation.types import (
    ChatRequest,
    CompletionRequest,
    ExpertInfo,
    GenerationResult,
    PreQuery,
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
    "Request",
    "SamplingParams",
    "TemplateError",
    "TokenUsage",
]

"""Experts, chat templates, the TGI client, the request journal and the local backend.

Phase builders call `ExpertPool` (see `pool.py`); the request and result types are in
`types.py`."""

from warriorcoder.generation.pool import EndpointDown, ExpertPool, GenerationFailed
from warriorcoder.generation.templates import ChatTemplate, TemplateError
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

"""`ExpertPool`: every LLM call of a phase, through the journal, to TGI or a local model.

    with ExpertPool.from_config(config) as pool:
        prequery = pool.mining_prefix("qwen", MINING_SYSTEM_PROMPT)
        results = pool.run(requests, desc="mine")   # same order as requests

`run` is synchronous: it runs its own event loop (in a worker thread when the calling thread
already runs one) and closes its HTTP session before returning. A request whose key is in
the journal with a result is not sent again; each new result is committed as it arrives.
When some calls fail for good, `run` first finishes every call it can reach, then raises
`GenerationFailed`; the next run sends only the calls without a result.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from warriorcoder.config import ArenaConfig, ExpertConfig, GenerationConfig
from warriorcoder.generation.journal import Journal, request_key
from warriorcoder.generation.local import LocalModel
from warriorcoder.generation.progress import Progress
from warriorcoder.generation.templates import (
    load_tokenizer,
    template_for,
    tokenizer_source,
)
from warriorcoder.generation.tgi import (
    CallError,
    Endpoint,
    TGIExpert,
    endpoint_headers,
    expert_info,
    fetch_info,
)
from warriorcoder.generation.types import (
    ChatRequest,
    CompletionRequest,
    ExpertInfo,
    GenerationResult,
    PreQuery,
    Request,
    TokenUsage,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


class EndpointDown(RuntimeError):
    """No URL of an expert answers `/info` and the journal has never seen it either."""


class GenerationFailed(RuntimeError):
    """Some calls failed for good; every other call finished and is in the journal.

    `failures` pairs each failed request with its error, `down` maps experts to the endpoints
    that stayed down, `results` holds every result in request order (failed ones with
    `error` set). Running the phase again sends only the calls that have no result."""

    def __init__(
        self,
        failures: list[tuple[Request, str]],
        down: dict[str, list[str]],
        results: list[GenerationResult],
        journal: Path,
    ) -> None:
        self.failures = failures
        self.down = down
        self.results = results
        self.journal = journal
        super().__init__(self._message())

    def _message(self) -> str:
        done = sum(r.ok for r in self.results)
        lines = [
            f"{len(self.failures)} of {len(self.results)} calls failed; the other {done} are "
            f"done and journaled in {self.journal}."
        ]
        for expert, endpoints in sorted(self.down.items()):
            lines.append(f"  expert {expert!r} stayed down: {'; '.join(endpoints)}")
        counts: dict[str, int] = {}
        for _, error in self.failures:
            counts[error] = counts.get(error, 0) + 1
        for error, count in sorted(counts.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  {count} x {error}")
        lines.append(
            "Running the phase again sends only the failed calls (bring the endpoints back first)."
        )
        return "\n".join(lines)


@dataclass
class _Item:
    """One distinct call of a run: its key and the positions of the requests it answers."""

    request: Request
    key: str
    canonical: str
    indexes: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "completion" if isinstance(self.request, CompletionRequest) else "chat"


@dataclass
class _RunState:
    results: list[GenerationResult | None]
    progress: Progress
    down: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per expert, the URLs that are (or went) down and their last error."""


class ExpertPool:
    """The experts of an arena behind one journal; see the module docstring."""

    def __init__(
        self,
        experts: Sequence[ExpertConfig],
        generation: GenerationConfig,
        *,
        progress: bool | None = None,
    ) -> None:
        self.experts = {expert.name: expert for expert in experts}
        self.config = generation
        self.progress = progress
        self.journal = Journal(generation.journal)
        self.cache_root = Path(generation.journal).parent / "models"
        self._headers = {e.name: endpoint_headers(e) for e in experts if not e.is_local}
        self._local = {
            e.name: LocalModel(e, self.cache_root, generation.local_batch_size)
            for e in experts
            if e.is_local
        }
        self._infos: dict[str, ExpertInfo] = {}
        self._tokenizers: dict[str, Any] = {}
        self._prequeries: dict[tuple[str, str | None], PreQuery] = {}
        self._usage = {name: TokenUsage() for name in self.experts}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ArenaConfig, *, progress: bool | None = None) -> ExpertPool:
        """The pool of an arena config; its journal is `config.generation.journal`."""
        return cls(config.experts, config.generation, progress=progress)

    # -- identity and templates -------------------------------------------------------------

    def _expert(self, name: str) -> ExpertConfig:
        try:
            return self.experts[name]
        except KeyError:
            raise KeyError(
                f"unknown expert {name!r}; known experts: {sorted(self.experts)}"
            ) from None

    def info(self, expert: str) -> ExpertInfo:
        """Identity and limits from the server's `/info` (or the local weights); cached."""
        config = self._expert(expert)
        if expert not in self._infos:
            if config.is_local:
                self._infos[expert] = self._local[expert].info()
            else:
                down = self._sync(lambda: self._with_session(self._refresh_infos, [expert]))
                if expert not in self._infos:
                    raise EndpointDown(
                        f"expert {expert!r}: no endpoint answers /info: {_describe(down[expert])}"
                    )
        return self._infos[expert]

    def tokenizer(self, expert: str) -> Any:
        """The expert's tokenizer (`tokenizer`, else the local model's, else `model_id`)."""
        config = self._expert(expert)
        if expert not in self._tokenizers:
            if config.is_local and not config.tokenizer:
                self._tokenizers[expert] = self._local[expert].tokenizer()
            else:
                self._tokenizers[expert] = load_tokenizer(*tokenizer_source(config))
        return self._tokenizers[expert]

    def mining_prefix(self, expert: str, system_prompt: str | None) -> PreQuery:
        """The pre-query prefix and user-turn stop strings from the expert's chat template."""
        config = self._expert(expert)
        cache_key = (expert, system_prompt)
        if cache_key not in self._prequeries:
            tokenizer, error = None, None
            try:
                tokenizer = self.tokenizer(expert)
            except Exception as failure:  # offline without the tokenizer: override may do
                error = failure
            template = template_for(config, tokenizer, error)
            self._prequeries[cache_key] = template.pre_query(system_prompt)
        return self._prequeries[cache_key]

    def usage(self) -> dict[str, TokenUsage]:
        """Tokens and calls per expert since the pool was made (copies)."""
        with self._lock:
            return {
                name: replace(usage, extra=dict(usage.extra)) for name, usage in self._usage.items()
            }

    def close(self) -> None:
        self.journal.close()

    def __enter__(self) -> ExpertPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running -----------------------------------------------------------------------------

    def run(self, requests: Sequence[Request], desc: str) -> list[GenerationResult]:
        """Results in the order of `requests`; raises `GenerationFailed` after the fact."""
        requests = list(requests)
        unknown = sorted({r.expert for r in requests} - set(self.experts))
        if unknown:
            raise KeyError(
                f"requests name unknown experts {unknown}; known: {sorted(self.experts)}"
            )
        for request in requests:
            if not isinstance(request, CompletionRequest | ChatRequest):
                raise TypeError(f"not a CompletionRequest or ChatRequest: {request!r}")
        if not requests:
            return []
        results, failures, down = self._sync(lambda: self._with_session(self._run, requests, desc))
        if failures:
            raise GenerationFailed(failures, down, results, self.journal.path)
        return results

    def _sync(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine to completion on a fresh loop, in a worker thread if one runs here."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(make())  # type: ignore[arg-type]
        with ThreadPoolExecutor(1, thread_name_prefix="warriorcoder-run") as executor:
            return executor.submit(asyncio.run, make()).result()  # type: ignore[arg-type]

    async def _with_session(self, body: Callable[..., Awaitable[T]], *args: Any) -> T:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await body(session, *args)

    async def _refresh_infos(
        self, session: aiohttp.ClientSession, names: Sequence[str]
    ) -> dict[str, dict[str, str]]:
        """Fetch `/info` of these TGI experts; returns, per expert, its down URLs and errors."""
        down: dict[str, dict[str, str]] = {}

        async def one(name: str) -> None:
            expert = self.experts[name]
            answers = await asyncio.gather(
                *(
                    fetch_info(session, url, self._headers[name], self.config)
                    for url in expert.urls
                ),
                return_exceptions=True,
            )
            live = {}
            for url, answer in zip(expert.urls, answers, strict=True):
                if isinstance(answer, BaseException):
                    if not isinstance(answer, CallError):
                        raise answer
                    down.setdefault(name, {})[url] = str(answer)
                else:
                    live[url] = answer
            identities = {(i["model_id"], i.get("model_sha")) for i in live.values()}
            if len(identities) > 1:
                raise ValueError(
                    f"expert {name!r}: its URLs serve different models {sorted(identities)}; "
                    "give each model its own expert"
                )
            if live:
                for url, payload in live.items():
                    self.journal.save_info(url, payload)
                payload = next(iter(live.values()))
                self._infos[name] = expert_info(name, payload, expert.max_concurrency)
                if not self._infos[name].model_revision:
                    logger.warning(
                        "expert %s: /info gives no model_sha, so the journal cannot tell "
                        "revisions of %s apart",
                        name,
                        self._infos[name].model_id,
                    )
                return
            cached = next(
                (info for url in expert.urls if (info := self.journal.load_info(url))), None
            )
            if cached is not None:
                logger.warning(
                    "expert %s is down; using its last known /info for the journal", name
                )
                self._infos[name] = expert_info(name, cached, expert.max_concurrency)

        await asyncio.gather(*(one(name) for name in names))
        return down

    async def _run(
        self, session: aiohttp.ClientSession, requests: list[Request], desc: str
    ) -> tuple[list[GenerationResult], list[tuple[Request, str]], dict[str, list[str]]]:
        names = sorted({r.expert for r in requests})
        tgi_names = [n for n in names if not self.experts[n].is_local]
        down = await self._refresh_infos(session, tgi_names)
        for name in names:
            if self.experts[name].is_local and name not in self._infos:
                self._infos[name] = self._local[name].info()

        items: dict[str, _Item] = {}
        unkeyed: list[int] = []
        for index, request in enumerate(requests):
            info = self._infos.get(request.expert)
            if info is None:
                unkeyed.append(index)
                continue
            key, canonical = request_key(request, info.model_id, info.model_revision)
            item = items.get(key)
            if item is None:
                item = items[key] = _Item(request, key, canonical)
            item.indexes.append(index)

        results: list[GenerationResult | None] = [None] * len(requests)
        cached = self.journal.results(items)
        pending: dict[str, list[_Item]] = {}
        with self._lock:
            for key, item in items.items():
                if key in cached:
                    for index in item.indexes:
                        results[index] = cached[key]
                    self._usage[item.request.expert].cached += len(item.indexes)
                else:
                    pending.setdefault(item.request.expert, []).append(item)
        for index in unkeyed:
            name = requests[index].expert
            results[index] = _down_result(self.experts[name], down.get(name, {}))
        done = sum(r is not None for r in results)
        state = _RunState(results, Progress(len(requests), desc, done, self.progress), down)
        try:
            jobs = []
            for name, expert_items in pending.items():
                if self.experts[name].is_local:
                    jobs.append(self._run_local(name, expert_items, state))
                else:
                    jobs.append(self._run_tgi(session, name, expert_items, state))
            await asyncio.gather(*jobs)
        finally:
            state.progress.close()
        final = [r for r in results if r is not None]
        assert len(final) == len(requests)
        failures = [(requests[i], r.error or "") for i, r in enumerate(final) if not r.ok]
        with self._lock:
            for index in unkeyed:
                self._usage[requests[index].expert].failures += 1
        return (
            final,
            failures,
            {name: [f"{u} ({e})" for u, e in urls.items()] for name, urls in state.down.items()},
        )

    def _finish(
        self, item: _Item, result: GenerationResult, attempts: int, computed: bool, state: _RunState
    ) -> None:
        name = item.request.expert
        if computed:
            self.journal.record(item.key, name, item.kind, item.canonical, result, attempts)
        for index in item.indexes:
            state.results[index] = result
        with self._lock:
            usage = self._usage[name]
            usage.extra["attempts"] = usage.extra.get("attempts", 0) + attempts
            if result.ok:
                usage.requests += 1
                usage.prompt_tokens += result.prompt_tokens
                usage.generated_tokens += result.generated_tokens
            else:
                usage.failures += len(item.indexes)
        state.progress.done(result.generated_tokens, not result.ok, len(item.indexes))

    async def _run_tgi(
        self, session: aiohttp.ClientSession, name: str, items: list[_Item], state: _RunState
    ) -> None:
        expert = self.experts[name]
        info = self._infos[name]
        down_urls = state.down.get(name, {})
        limit = info.max_concurrent_requests
        endpoints = [
            Endpoint(
                url,
                limit,
                asyncio.Semaphore(limit),
                down=url in down_urls,
                last_error=down_urls.get(url, ""),
            )
            for url in expert.urls
        ]
        client = TGIExpert(
            name=name,
            info=info,
            endpoints=endpoints,
            session=session,
            headers=self._headers[name],
            config=self.config,
            count_prompt=self._prompt_counter(name),
        )
        queue = deque(items)

        async def worker() -> None:
            while queue:
                item = queue.popleft()
                state.progress.sent()
                outcome = await client.call(item.request)
                self._finish(item, outcome.result, outcome.attempts, outcome.computed, state)

        await asyncio.gather(*(worker() for _ in range(max(1, min(client.capacity, len(items))))))
        if any(e.down for e in endpoints):
            state.down[name] = {e.url: e.last_error for e in endpoints if e.down}

    def _prompt_counter(self, name: str) -> Callable[[str], int] | None:
        tokenizer = self._tokenizers.get(name)
        if tokenizer is None:
            return None

        @functools.lru_cache(maxsize=4096)
        def count(prompt: str) -> int:
            return len(tokenizer(prompt)["input_ids"])

        return count

    async def _run_local(self, name: str, items: list[_Item], state: _RunState) -> None:
        model = self._local[name]
        ordered = sorted(items, key=lambda item: item.request.params.max_new_tokens)
        size = self.config.local_batch_size
        for start in range(0, len(ordered), size):
            batch = ordered[start : start + size]
            for _ in batch:
                state.progress.sent()
            try:
                outputs = await asyncio.to_thread(model.generate, [i.request for i in batch])
            except Exception as error:  # recorded per call; the next run retries them
                logger.exception("expert %s: local generation failed", name)
                message = f"local generation failed: {type(error).__name__}: {error}"
                outputs = [
                    GenerationResult(
                        "", "error", 0, 0, model.expert.model_id, model.revision, error=message
                    )
                    for _ in batch
                ]
            for item, result in zip(batch, outputs, strict=True):
                self._finish(item, result, 1, True, state)


def _describe(down: dict[str, str]) -> str:
    return "; ".join(f"{url} ({error})" for url, error in down.items())


def _down_result(expert: ExpertConfig, down: dict[str, str]) -> GenerationResult:
    where = _describe(down) or ", ".join(expert.urls)
    return GenerationResult(
        text="",
        finish_reason="error",
        generated_tokens=0,
        prompt_tokens=0,
        model_id=expert.model_id,
        model_revision="",
        error=f"not sent: expert {expert.name!r} is down and was never seen before: {where}",
    )

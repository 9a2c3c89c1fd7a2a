"""The sections of the arena config: the hub target, one expert, generation, each phase."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

MINING_SYSTEM_PROMPT = (
    "You are an AI assistant designed to provide helpful, step-by-step guidance on coding "
    "problems. The user will ask you a wide range of Python coding questions. Your purpose is "
    "to assist users in understanding coding concepts, working through code, and arriving at "
    "the correct solutions."
)
"""The paper's Table 6 mining system prompt."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HubConfig(_Section):
    """Where datasets are published: a local folder (default) or the Hugging Face Hub."""

    backend: Literal["local", "hf"] = "local"
    root: Path = Path("hub")
    """Local backend: the folder that holds `<namespace>/<prefix>-<dataset>/<version>/`."""
    namespace: str = "local"
    prefix: str = "warriorcoder"
    endpoint: str | None = None
    """Hub backend: the Hub URL (default: `HF_ENDPOINT` or huggingface.co)."""
    private: bool = False
    token_env: str = "HF_TOKEN"
    """Name of the environment variable holding the Hub token; the token itself is never stored."""
    license: str = "apache-2.0"
    record_endpoints: bool = False
    """Keep the experts' URLs in published cards (off: cards name experts by model id and
    revision only, so internal host names never leave the cluster)."""

    @field_validator("namespace", "prefix")
    @classmethod
    def _repo_name_part(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        if not value or set(value) - allowed:
            raise ValueError("use letters, digits, '-', '_' and '.' only")
        return value

    def repo_id(self, name: str) -> str:
        """Repo id of a dataset (or `model`), e.g. `my-org/warriorcoder-votes`."""
        return f"{self.namespace}/{self.prefix}-{name}"


EXPERT_RUNTIME_FIELDS = ("urls", "max_concurrency", "token_env", "headers_env")
"""Expert fields that say where and how to reach a model, not what it answers: left out of
fingerprints, and taken from the current config when a version is rebuilt from its card."""


class ExpertConfig(_Section):
    """One expert: served over HTTP (`urls`, by TGI or an OpenAI-compatible server: `api`) or
    run in-process on the CPU (`local`)."""

    name: str
    model_id: str
    urls: list[str] = Field(default_factory=list)
    """Server base URLs (for `api: openai` with or without `/v1`); requests are shared between
    them by load."""
    api: Literal["tgi", "openai"] = "tgi"
    """The protocol of `urls`: TGI's own (`/info`, `/generate`) or the OpenAI-compatible one
    (`/v1/models`, `/v1/completions`, `/v1/chat/completions`) of vLLM, SGLang, llama.cpp..."""
    served_model: str | None = None
    """`api: openai`: the `model` sent in each request; default: the one `/v1/models` lists
    (or `model_id` among several)."""
    revision: str | None = None
    """The model revision, used where the server reports none (OpenAI-compatible servers do
    not; TGI's `/info` `model_sha` wins). It keys the journal and is printed on cards."""
    guided_decoding: Literal["tgi", "vllm", "vllm-legacy", "sglang", "llama.cpp", "none"] | None = (
        None
    )
    """How the server takes a regex constraint (judge.constrained_verdicts,
    filter.constrained_scores): TGI's `grammar`, vLLM's `structured_outputs` (>= 0.12;
    `vllm-legacy`: `guided_regex`), SGLang's `regex`, llama.cpp's GBNF `grammar`, or `none`.
    Default: `tgi` for `api: tgi`, `none` for `api: openai` (a constraint is then refused at
    the start of the phase)."""
    local: str | None = None
    """Path (or `local:` + path) of a transformers model run in-process instead of TGI."""
    gguf_file: str | None = None
    """For `local`: a GGUF file inside that folder, loaded through transformers."""
    tokenizer: str | None = None
    """Tokenizer (path or hub id) whose chat template gives the mining prefix; default model_id."""
    chat_template: str | None = None
    """A Jinja chat template that overrides the tokenizer's own."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Requests in flight per URL; default: TGI's `/info` `max_concurrent_requests`, 16 for
    `api: openai` (those servers do not say)."""
    token_env: str | None = None
    """Environment variable with a bearer token for the endpoint (Inference Endpoints)."""
    headers_env: str | None = None
    """Environment variable with extra headers as JSON; read at run time, never stored."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or "/" in value:
            raise ValueError("give a short name without '/' (it appears in dataset columns)")
        return value

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return [url.rstrip("/") for url in urls]

    @field_validator("local")
    @classmethod
    def _local(cls, value: str | None) -> str | None:
        return value.removeprefix("local:") if value else value

    @model_validator(mode="after")
    def _one_backend(self) -> ExpertConfig:
        if bool(self.urls) == bool(self.local):
            raise ValueError(
                f"expert {self.name!r} needs exactly one of `urls` (server base URLs) or `local` "
                "(a model path)"
            )
        if self.api == "openai" and self.local:
            raise ValueError(f"expert {self.name!r}: `api: openai` needs `urls`, not `local`")
        if self.api == "tgi" and self.guided_decoding not in (None, "tgi", "none"):
            raise ValueError(
                f"expert {self.name!r}: guided_decoding {self.guided_decoding!r} is for "
                "`api: openai`; a TGI server takes `tgi` (or `none`)"
            )
        return self

    @property
    def is_local(self) -> bool:
        return self.local is not None


class GenerationConfig(_Section):
    """Shared settings for every LLM call."""

    journal: Path = Path(".warriorcoder/journal.sqlite")
    """The request journal; a phase run again sends only the calls it has no result for."""
    max_retries: int = Field(default=6, ge=0)
    timeout_s: float = Field(default=300.0, gt=0)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    local_batch_size: int = Field(default=8, ge=1)


class MiningSurvival(_Section):
    """Assumed shares of mining calls that survive each step before compress (for the
    `samples_per_config: auto` sizing; each phase's card reports the real share)."""

    extraction: float = Field(default=0.9, gt=0, le=1)
    """Completions that yield an instruction (not cut by `max_new_tokens`, not empty, not a
    failed call). Our assumption; no measurement at scale (the embedded 135M run is no guide)."""
    dedup: float = Field(default=0.5, gt=0, le=1)
    """Instructions left by exact + near dedup. Our assumption, in line with Magpie's releases,
    which keep 300K of 1M mined rows after removing repetitive and low-quality ones (Magpie-Pro-1M
    -> Magpie-Pro-300K-Filtered); Magpie publishes no dedup-only rate for this setting."""
    decontamination: float = Field(default=0.99, gt=0, le=1)
    """Instructions not flagged as benchmark overlap. Our assumption (few mined instructions
    quote HumanEval/MBPP word 10-grams; the paper's Fig. 3 finds none above ROUGE 0.6)."""
    difficulty: float = Field(default=0.6, gt=0, le=1)
    """Instructions rated >= `filter.min_difficulty`. From the paper's Fig. 5 and section 4.4.3
    ("most instructions fall within the 'good' level", 'excellent' a small portion); the
    figure's exact shares are not in the text, so 0.6 is our reading of "most"."""
    pool: float = Field(default=1.2, ge=1)
    """Filtered instructions wanted per instruction compress keeps (> 1 gives KCenterGreedy a
    choice and absorbs error in the rates above). Our choice; the paper gives no pool size."""

    @property
    def product(self) -> float:
        """Share of mining calls expected to reach `filtered`."""
        return self.extraction * self.dedup * self.decontamination * self.difficulty


class MineConfig(_Section):
    temperatures: list[float] = Field(default_factory=lambda: [1.0, 1.1, 1.2])
    top_ps: list[float] = Field(default_factory=lambda: [0.99, 0.995, 1.0])
    samples_per_config: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """Mining calls per (expert, sampling config); `auto`: enough for `compress.size` x
    `survival.pool` instructions to survive `survival`
    (`warriorcoder.planning.planned_mining_samples`)."""
    survival: MiningSurvival = Field(default_factory=MiningSurvival)
    max_new_tokens: int = Field(default=512, ge=1)
    system_prompt: str | None = MINING_SYSTEM_PROMPT
    """Table 6 of the paper; used where the expert's template takes a system turn."""
    seed: int = 0
    instruction_start: str = ""
    """Text every mined instruction begins with: it follows each expert's pre-query prefix and
    the expert writes the rest of the user turn (e.g. "Write a Python function", to mine tasks a
    test can call). Empty: the paper, which leaves the whole user turn to the expert."""

    @field_validator("instruction_start")
    @classmethod
    def _instruction_start(cls, value: str) -> str:
        if value != value.rstrip():
            raise ValueError(
                "ends in whitespace, which the expert's first token would have to repeat; "
                f"remove it: {value.rstrip()!r}")
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_when_default(self, handler(self), ("instruction_start",))

    @field_validator("temperatures")
    @classmethod
    def _temperatures(cls, values: list[float]) -> list[float]:
        if not values or any(t <= 0 for t in values):
            raise ValueError("give at least one temperature, each > 0")
        return values

    @field_validator("top_ps")
    @classmethod
    def _top_ps(cls, values: list[float]) -> list[float]:
        if not values or any(not 0 < p <= 1 for p in values):
            raise ValueError("give at least one top_p, each in (0, 1]")
        return values


class FilterConfig(_Section):
    near_dup_threshold: float = Field(default=0.7, gt=0, le=1)
    """Jaccard similarity of word-shingle sets (exact, for LSH candidates) from which two rows
    are near duplicates."""
    minhash_permutations: int = Field(default=128, ge=16)
    shingle_size: int = Field(default=5, ge=1)
    decontaminate: bool = True
    contamination_ngram: int = Field(default=10, ge=1)
    drop_contaminated: bool = True
    mbpp_path: Path | None = None
    """A local MBPP jsonl (fields `text`, `code`) to decontaminate against as well."""
    min_difficulty: float = Field(default=6, ge=1, le=10)
    judges: list[str] | None = None
    """Experts that rate difficulty; default: every expert but the instruction's miner."""
    max_attempts: int = Field(default=3, ge=1)
    max_new_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    retry_temperature: float = Field(default=0.7, gt=0)
    """Temperature of a retried rating when `temperature` is 0 (greedy would repeat the reply)."""
    constrained_scores: bool = False
    """Guided decoding (TGI `grammar`, or the local backend's regex sampler): the rating must end
    in a `Score: N` line, sized to fit in `max_new_tokens`."""
    seed: int = 0


class CompressConfig(_Section):
    embedding_model: str = "sentence-transformers/all-roberta-large-v1"
    size: int = Field(default=70_000, ge=1)
    """Instructions KCenterGreedy keeps: the scale knob. Battles = size x
    `battle.battles_per_instruction` (the paper: 70,000 battle rounds, one defender each), and
    mining is sized from it (`mine.samples_per_config: auto`)."""
    seed: int = 0
    batch_size: int = Field(default=64, ge=1)
    chunk_size: int = Field(default=65_536, ge=1)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", exclude=True)
    """Where KCenterGreedy runs: `auto` (a GPU when there is one, the embeddings staying on it;
    else the CPU), `cpu`, `cuda` or `cuda:N`. The selection is the same everywhere, so this is
    where, not what: left out of fingerprints and cards, like the experts' URLs."""


class BattleConfig(_Section):
    battles_per_instruction: int = Field(default=1, ge=1)
    max_new_tokens: int = Field(default=2048, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    seed: int = 0


def _omit_when_default(section: BaseModel, data: dict[str, Any], fields: tuple[str, ...]
                       ) -> dict[str, Any]:
    """Leave out of the dump the fields added after the paper's defaults while they keep their
    default, so configs written before them keep their fingerprints (their datasets are reused)."""
    for name in fields:
        if getattr(section, name) == type(section).model_fields[name].get_default(
                call_default_factory=True):
            data.pop(name, None)
    return data


class ExecutionConfig(_Section):
    """Execution-grounded judging (beyond the paper): uninvolved experts write tests, both
    answers run against them in the sandbox, and execution verdicts join the votes."""

    mode: Literal["off", "vote", "first", "record"] = "off"
    """`off`: no tests, the LLM votes alone (the paper exactly). `vote`: each test author's
    execution verdict is one more vote in eq. 2 and the Elo outcome. `first`: the execution
    verdicts decide a battle when they are decisive; the LLM votes decide the rest. `record`:
    battles as in `first`, and each instruction's target is one of its answers with the best
    test record over all its battles, eq. 5 choosing among those."""
    tests_per_answer: int = Field(default=5, ge=1, le=50)
    """Assert statements asked of each uninvolved expert for each answer's interface."""
    max_new_tokens: int = Field(default=384, ge=16)
    max_attempts: int = Field(default=2, ge=1)
    """A reply with no usable assert is asked again (a new seed) up to this many times in all,
    then recorded invalid (that author then gives no execution verdict on the battle)."""
    temperature: float = Field(default=0.0, ge=0)
    retry_temperature: float = Field(default=0.7, gt=0)
    test_time_s: float = Field(default=4.0, gt=0)
    """Time limit of one test in the sandbox."""
    memory_mb: int = Field(default=1024, ge=64)
    """Memory cap of an answer's sandboxed process."""
    discount_unpassed: bool = True
    """Leave out of a verdict the tests both answers ran and neither passed (a wrong test
    tells the answers apart no better than noise)."""

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


class JudgeConfig(_Section):
    both_orders: bool = False
    constrained_verdicts: bool = False
    judges: list[str] | None = None
    """Experts allowed to judge; default: every expert. Never a battle's own competitors."""
    max_attempts: int = Field(default=3, ge=1)
    max_new_tokens: int = Field(default=1024, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    retry_temperature: float = Field(default=0.7, gt=0)
    """Temperature of a retried vote when `temperature` is 0 (greedy would repeat the reply)."""
    bias_policy: Literal["downweight", "reask", "drop", "none"] = "downweight"
    """What to do with a judge whose first-shown share departs from 0.5 beyond the
    `bias_confidence` binomial bound: `downweight` its votes by 2 x min(share, 1 - share) (the
    share of its verdicts that follow the content, if the rest follow the position; no extra
    calls), `reask` it with the answers swapped (a disagreeing pair counts as a tie, as
    FastChat does; one more call per vote of a flagged judge; with `both_orders` every vote
    is already paired), `drop` its votes, or `none`
    (count every vote). Applied wherever votes are tallied (the votes card and `select`)."""
    bias_confidence: float = Field(default=0.95, gt=0, lt=1)
    """Confidence of the two-sided exact binomial test that flags a position-biased judge."""
    seed: int = 0
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    """Tests and execution verdicts beside the LLM votes; `mode: off` (the default) is the
    paper. A bare mode is accepted: `execution: first`."""

    @field_validator("execution", mode="before")
    @classmethod
    def _bare_mode(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str | bool) else value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_when_default(self, handler(self), ("execution",))


class SelectConfig(_Section):
    k: float = Field(default=40.0, gt=0)
    initial_rating: float = 1000.0
    alpha: float = Field(default=0.7, ge=0, le=1)
    rating: Literal["online", "permutation", "bradley_terry"] = "online"
    """Which rating feeds eq. 5: the paper's online Elo, its mean over permutations, or BT."""
    elo_permutations: int = Field(default=100, ge=1)
    bootstrap_rounds: int = Field(default=200, ge=1)
    keep_unjudged: bool = True
    """Instructions none of whose battles got a valid vote: keep them, the target chosen by
    the global rating alone (local scores 0.5), or leave them out of sft_final (False)."""
    allow_truncated_targets: bool = False
    """False: an answer cut by `battle.max_new_tokens` is never a target; the best complete
    candidate is chosen instead, and an instruction whose every candidate is cut is left out
    (both counted in the card). True: eq. 5 alone decides, cut answers included."""
    stability_orders: int = Field(default=100, ge=1)
    """Elo orders (for `rating: online`; bootstrap resamples for the other ratings) over which
    each target is chosen again: `target_stability` is the share that agree with it."""
    seed: int = 0
    require_passing: bool = False
    """With `judge.execution`: keep only instructions whose target passed every test it ran
    (and ran at least one); the rest are counted on the card. Without execution: no effect."""

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_when_default(self, handler(self), ("require_passing",))


class TrainConfig(_Section):
    base_model: str = "deepseek-ai/deepseek-coder-6.7b-base"
    dataset: str | None = None
    """`<repo-or-path>@<version>` of sft_final; default: this arena's sft_final, latest printed."""
    output_dir: Path = Path("checkpoints/warriorcoder")
    global_batch_size: int = Field(default=512, ge=1)
    micro_batch_size: int = Field(default=4, ge=1)
    max_steps: int = Field(default=448, ge=1)
    learning_rate: float = Field(default=1e-5, gt=0)
    weight_decay: float = Field(default=3e-7, ge=0)
    warmup_ratio: float = Field(default=0.2, ge=0, le=1)
    lr_scheduler_type: str = "warmup_lr"
    """`warmup_lr`: DeepSpeed's WarmupLR (the paper's), warming up over `warmup_ratio` of the
    steps as `warmup_type` says, then constant. Any other value is a transformers schedule
    (`constant_with_warmup` = linear warmup then constant, `linear`, `cosine`, ...)."""
    warmup_type: Literal["log", "linear"] = "log"
    """`warmup_lr` only: DeepSpeed WarmupLR's warmup curve; `log` is DeepSpeed's default."""
    skip_truncated: bool = True
    """Leave out rows flagged `truncated` (a target cut by the length limit; counted)."""
    max_length: int = Field(default=2048, ge=16)
    zero_stage: Literal[2, 3] = 3
    offload: bool = False
    bf16: bool | Literal["auto"] = "auto"
    packing: bool = False
    gradient_checkpointing: bool = True
    system_line: str = (
        "You are an exceptionally intelligent coding assistant that consistently delivers "
        "accurate and reliable responses to user instructions."
    )
    prompt_template: str = "{system}\n\n@@ Instruction\n{instruction}\n\n@@ Response\n"
    logging_steps: int = Field(default=1, ge=1)
    save_steps: int = Field(default=100, ge=1)
    seed: int = 0

"""Training data and artefacts without DeepSpeed: prompt format, chat template, label mask,
length filter, packing, dataset pinning, batch arithmetic, model card and publishing."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard
from transformers import DataCollatorWithFlattening, LlamaConfig, LlamaForCausalLM

from tests.support.tiny_models import gpt2_tokenizer
from warriorcoder.config import ArenaConfig, HubConfig, TrainConfig
from warriorcoder.dataset_cards.model_card import LOSS_FIGURE
from warriorcoder.errors import SpecError, TrainingError, VersionNotFoundError
from warriorcoder.hub import LocalHubStore, parse_spec
from warriorcoder.training.arguments import gradient_accumulation_steps
from warriorcoder.training.checkpoint import write_card_and_result
from warriorcoder.training.dataset import (
    DatasetSource,
    load_pinned,
)
from warriorcoder.training.formatting import (
    IGNORE_INDEX,
    PromptFormat,
    tokenize_dataset,
)
from warriorcoder.training.publish import publish_checkpoint
from warriorcoder.training.result import TrainResult
from warriorcoder.training.sft import main

TRICKY = [
    "Write a function that adds two numbers.",
    "Explain \"{{ x }}\" and {% if y %} in Jinja, then print('\\n') with a \\ backslash.",
    "Unicode: déjà vu, 数字, emoji 😀\n\nand blank lines\n",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer():
    tok = gpt2_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


@pytest.fixture
def fmt() -> PromptFormat:
    train = TrainConfig()
    return PromptFormat(train.prompt_template, train.system_line)


def _config(tmp_path, **train) -> ArenaConfig:
    return ArenaConfig(
        hub=HubConfig(root=tmp_path / "hub"),
        experts=[
            {"name": "a", "model_id": "a", "urls": ["http://a"]},
            {"name": "b", "model_id": "b", "urls": ["http://b"]},
        ],
        train=train,
    )


@pytest.mark.parametrize("instruction", TRICKY)
def test_chat_template_renders_the_training_prompt(tokenizer, fmt, instruction):
    tokenizer.chat_template = fmt.chat_template()
    user = [{"role": "user", "content": instruction}]
    rendered = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    assert rendered == fmt.prompt(instruction)
    assert "@@ Instruction\n" + instruction + "\n\n@@ Response\n" in rendered

    answer = "def f():\n    return '{{ }}'\n"
    turn = [*user, {"role": "assistant", "content": answer}]
    full = tokenizer.apply_chat_template(turn, tokenize=False)
    assert full == fmt.prompt(instruction) + answer + tokenizer.eos_token

    system = [{"role": "system", "content": "Be terse."}, *user]
    custom = tokenizer.apply_chat_template(system, add_generation_prompt=True, tokenize=False)
    assert custom == fmt.prompt(instruction).replace(fmt.system, "Be terse.")


def test_custom_template_with_literal_braces_and_quotes(tokenizer):
    fmt = PromptFormat('### {system} "{{json}}"\n\\ Q: {instruction}\nA — 答: ', "sys 'line' 😀")
    tokenizer.chat_template = fmt.chat_template()
    for instruction in TRICKY:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": instruction}], add_generation_prompt=True, tokenize=False
        )
        assert rendered == f"### sys 'line' 😀 \"{{json}}\"\n\\ Q: {instruction}\nA — 答: "


@pytest.mark.parametrize(
    "template",
    ["no instruction field", "{instruction} {instruction}", "{system} {other} {instruction}"],
)
def test_bad_prompt_template_is_rejected(template):
    with pytest.raises(ValueError, match="prompt_template"):
        PromptFormat(template, "system")


def test_label_mask_covers_exactly_the_prompt(tokenizer, fmt):
    rows = [
        {
            "instruction": "Reverse a string in Python.",
            "response": "def rev(s):\n    return s[::-1]\n",
        },
        {"instruction": "Add two numbers.", "response": "Use `a + b`."},
    ]
    data = tokenize_dataset(Dataset.from_list(rows), tokenizer, fmt, max_length=512)
    assert data.rows_used == 2 and data.dropped_too_long == 0
    for row, example in zip(rows, data.dataset, strict=True):
        ids, labels = example["input_ids"], example["labels"]
        masked = sum(1 for label in labels if label == IGNORE_INDEX)
        assert labels[:masked] == [IGNORE_INDEX] * masked  # the mask is one prefix
        assert tokenizer.decode(ids[:masked]) == fmt.prompt(row["instruction"])
        assert masked == len(tokenizer(fmt.prompt(row["instruction"]))["input_ids"])
        assert labels[masked:] == ids[masked:]
        assert tokenizer.decode(labels[masked:]) == row["response"] + tokenizer.eos_token


def test_rows_longer_than_max_length_are_dropped_not_truncated(tokenizer, fmt):
    long_answer = "x = 1\n" * 200
    rows = [
        {"instruction": "short", "response": "ok"},
        {"instruction": "long", "response": long_answer},
        {"instruction": "short too", "response": "fine"},
    ]
    data = tokenize_dataset(Dataset.from_list(rows), tokenizer, fmt, max_length=100)
    assert (data.rows_in, data.rows_used, data.dropped_too_long) == (3, 2, 1)
    kept = [tokenizer.decode(example["input_ids"]) for example in data.dataset]
    assert kept == [
        fmt.prompt("short") + "ok" + tokenizer.eos_token,
        fmt.prompt("short too") + "fine" + tokenizer.eos_token,
    ]
    with pytest.raises(ValueError, match="max_length=10"):
        tokenize_dataset(Dataset.from_list(rows), tokenizer, fmt, max_length=10)


def test_missing_or_empty_columns_are_named(tokenizer, fmt):
    no_response = Dataset.from_list([{"instruction": "x", "messages": []}])
    with pytest.raises(ValueError, match=r"\['response'\]"):
        tokenize_dataset(no_response, tokenizer, fmt, max_length=64)
    empty = Dataset.from_list(
        [{"instruction": "x", "response": "y"}, {"instruction": "z", "response": ""}]
    )
    with pytest.raises(ValueError, match="row 1: `response`"):
        tokenize_dataset(empty, tokenizer, fmt, max_length=64)


def test_packing_does_not_attend_across_examples(tokenizer, fmt):
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    rows = [
        {"instruction": "one", "response": "first answer"},
        {"instruction": "two", "response": "2"},
    ]
    features = list(tokenize_dataset(Dataset.from_list(rows), tokenizer, fmt, 128).dataset)
    packed = DataCollatorWithFlattening(separator_id=IGNORE_INDEX)(features)
    assert packed["input_ids"].shape[0] == 1
    with torch.no_grad():
        # As in training: the Trainer sets use_cache=False (with a cache, packing is not detected).
        logits = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits[0]
        start = 0
        for feature in features:
            alone = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0]
            end = start + len(feature["input_ids"])
            torch.testing.assert_close(logits[start:end], alone, atol=1e-5, rtol=1e-4)
            start = end


def test_global_batch_must_divide(tmp_path, monkeypatch, capsys):
    assert gradient_accumulation_steps(512, 4, 8) == 16
    with pytest.raises(ValueError, match=r"global_batch_size=512 is not divisible .* = 24"):
        gradient_accumulation_steps(512, 3, 8)
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    config_path = tmp_path / "arena.yaml"
    config_path.write_text(
        "experts:\n  - {name: a, model_id: a, urls: ['http://a']}\n"
        "  - {name: b, model_id: b, urls: ['http://b']}\n"
    )
    code = main(
        [
            "--config",
            str(config_path),
            "--set",
            "global_batch_size=12",
            "--set",
            "micro_batch_size=4",
            "--dataset",
            "x/y@v1",
        ]
    )
    assert code == 1
    assert "Error: train.global_batch_size=12 is not divisible" in capsys.readouterr().err


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    config_path = tmp_path / "arena.yaml"
    config_path.write_text(
        "experts:\n  - {name: a, model_id: a, urls: ['http://a']}\n"
        "  - {name: b, model_id: b, urls: ['http://b']}\n"
        "train: {output_dir: out}\n"
    )
    (tmp_path / "out").mkdir()
    assert main(["--config", str(config_path), "--resume"]) == 1
    assert f"no checkpoint-<step> folder in {tmp_path / 'out'}" in capsys.readouterr().err


@pytest.mark.parametrize("mistake", [
    ["--dataset", "my-org/warriorcoder-sft_final"],  # no @vN
    ["--resume"],  # nothing to resume from
    ["--dataset", "local/warriorcoder-sft_final@v9"],  # no such version
])
def test_both_entry_points_say_a_mistake_in_one_error_line(tmp_path, monkeypatch, capsys,
                                                             mistake):
    """`warriorcoder train` and `python -m warriorcoder.training.sft` print the same one line
    `Error: ...` and exit 1, no traceback."""
    from click.testing import CliRunner

    from warriorcoder import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "arena.yaml").write_text(
        "experts:\n  - {name: a, model_id: a, urls: ['http://a']}\n"
        "  - {name: b, model_id: b, urls: ['http://b']}\n"
        "train: {output_dir: out}\n"
    )
    (tmp_path / "out").mkdir()
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)  # each entry point sets up a world of one
    code = main(["--config", "arena.yaml", *mistake])
    module_err = capsys.readouterr().err.strip().splitlines()
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    click_run = CliRunner().invoke(cli.main, ["train", "-c", "arena.yaml", *mistake])
    click_err = [line for line in click_run.output.strip().splitlines()
                 if not line.startswith("[warriorcoder train]")]
    assert (code, module_err[-1:]) == (click_run.exit_code, click_err[-1:])
    assert code == 1 and module_err[-1].startswith("Error: ")
    assert not any("Traceback" in line for line in module_err + click_err)


def test_a_usage_mistake_is_said_as_click_says_it(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--dataset", "x@v1"])  # --config missing
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "Error: the following arguments are required: --config")


def test_dataset_version_is_pinned_and_loads_from_folder_or_store(tmp_path):
    with pytest.raises(SpecError, match="@vN"):
        parse_spec("my-org/warriorcoder-sft_final")
    config = _config(tmp_path)
    rows = [
        {"instruction": f"task {i}", "response": f"answer {i}", "messages": []} for i in range(3)
    ]
    store = LocalHubStore(config.hub)
    card = lambda ref: f"# sft_final {ref.version}\n"  # noqa: E731
    store.publish("sft_final", Dataset.from_list(rows), card)
    store.publish("sft_final", Dataset.from_list(rows[:1]), card)
    folder = tmp_path / "hub" / "local" / "warriorcoder-sft_final"

    by_folder, source = load_pinned(f"{folder}@v1", config)
    assert by_folder["instruction"] == ["task 0", "task 1", "task 2"]
    assert (source.repo_id, source.version) == ("local/warriorcoder-sft_final", "v1")
    by_repo, source = load_pinned("local/warriorcoder-sft_final@v2", config)
    assert len(by_repo) == 1 and source.version == "v2"
    with pytest.raises(VersionNotFoundError,
                       match=r"no version folder 'v9'; versions there: \['v1', 'v2'\]"):
        load_pinned(f"{folder}@v9", config)


def _result(tmp_path) -> TrainResult:
    return TrainResult(
        checkpoint_dir=tmp_path,
        base_model="deepseek-ai/deepseek-coder-6.7b-base",
        dataset=DatasetSource(
            "my-org/warriorcoder-sft_final", "v3", "my-org/warriorcoder-sft_final"
        ),
        rows_in=100,
        rows_used=97,
        rows_dropped_too_long=3,
        global_step=448,
        final_loss=0.4321,
        train_loss=0.61,
        loss_history=[(1, 1.2), (2, 0.9), (448, 0.4321)],
        hyperparameters={"learning_rate": 1e-05, "global_batch_size": 512},
    )


def test_model_card_records_lineage_hyperparameters_and_loss(tmp_path, fmt):
    write_card_and_result(_config(tmp_path), _result(tmp_path), fmt.prompt("<instruction>"))
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "deepseek-ai/deepseek-coder-6.7b-base"
    assert card.data.datasets == ["my-org/warriorcoder-sft_final"]
    assert "my-org/warriorcoder-sft_final@v3" in card.text
    assert "| learning_rate | `1e-05` |" in card.text
    assert "Final training loss: **0.4321**" in card.text
    assert f"![training loss]({LOSS_FIGURE})" in card.text
    assert (tmp_path / LOSS_FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "@@ Instruction\n<instruction>\n\n@@ Response" in card.text
    lineage = card.data.to_dict()["warriorcoder"]
    assert lineage["phase"] == "train" and lineage["parent"]["version"] == "v3"
    assert (tmp_path / "training_result.json").is_file()


def test_publish_writes_numbered_local_versions(tmp_path):
    checkpoint = tmp_path / "final"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "README.md").write_text("card")
    hub = HubConfig(root=tmp_path / "hub", namespace="org")
    first = publish_checkpoint(checkpoint, hub)
    second = publish_checkpoint(checkpoint, hub)
    assert (first.spec(), second.spec()) == ("org/warriorcoder-model@v1",
                                             "org/warriorcoder-model@v2")
    repo = tmp_path / "hub" / "org" / "warriorcoder-model"
    assert sorted(p.name for p in repo.iterdir()) == ["v1", "v2"]  # no temporary leftovers
    assert (repo / "v2" / "README.md").read_text() == "card"
    with pytest.raises(TrainingError, match="no config.json"):
        publish_checkpoint(tmp_path / "hub", hub)


def test_rows_whose_target_was_cut_are_skipped_unless_kept():
    from warriorcoder.training.sft import skip_truncated_rows

    rows = Dataset.from_list([{"instruction": f"t{i}", "response": "r", "truncated": i % 3 == 0}
                              for i in range(9)])
    kept, skipped = skip_truncated_rows(rows, TrainConfig())
    assert (len(kept), skipped) == (6, 3) and not any(kept["truncated"])
    assert skip_truncated_rows(rows, TrainConfig(skip_truncated=False))[1] == 0
    assert skip_truncated_rows(rows.remove_columns("truncated"), TrainConfig())[1] == 0


def test_the_default_schedule_is_deepspeed_warmup_lr(tmp_path):
    from warriorcoder.errors import ConfigError
    from warriorcoder.training.arguments import (
        build_training_arguments,
        load_deepspeed_config,
        with_scheduler,
    )

    train = TrainConfig(output_dir=tmp_path, max_steps=448)
    zero2 = load_deepspeed_config("zero2")
    block = with_scheduler(zero2, train)["scheduler"]
    assert block == {"type": "WarmupLR", "params": {
        "warmup_min_lr": "auto", "warmup_max_lr": "auto", "warmup_num_steps": "auto",
        "warmup_type": "log"}}
    assert "scheduler" not in zero2  # the shipped config is not changed
    other = train.model_copy(update={"lr_scheduler_type": "constant_with_warmup"})
    assert "scheduler" not in with_scheduler(zero2, other)
    with pytest.raises(ConfigError, match="train.lr_scheduler_type 'warmup' is unknown"):
        build_training_arguments(train.model_copy(update={"lr_scheduler_type": "warmup"}),
                                 deepspeed=zero2)

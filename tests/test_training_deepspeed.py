"""End-to-end SFT on the CPU under DeepSpeed ZeRO-2 / ZeRO-3, in 1 and 2 processes.

A tiny random Llama (GPT-2 BPE tokenizer) trains 20 steps on an `sft_final` version published
to a local hub store, through the real entry point `python -m warriorcoder.training.sft` (and
`torchrun` for 2 processes). DeepSpeed's shm comm op is compiled once (~26 s) into
TORCH_EXTENSIONS_DIR (default: the user cache) and reused afterwards.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support.tiny_models import build_tiny_llama
from warriorcoder.config import HubConfig, TrainConfig
from warriorcoder.hub import LocalHubStore
from warriorcoder.training.formatting import PromptFormat

STEPS = 20
CONFIG = f"""\
hub: {{root: hub}}
experts:
  - {{name: a, model_id: a, urls: ["http://a"]}}
  - {{name: b, model_id: b, urls: ["http://b"]}}
train:
  base_model: base
  output_dir: out
  global_batch_size: 8
  micro_batch_size: 4
  max_steps: {STEPS}
  learning_rate: 0.003
  save_steps: 10
  max_length: 256
  gradient_checkpointing: false
"""


def _rows(count: int = 64) -> list[dict]:
    rng = random.Random(0)
    ops = [("sum", "+"), ("difference", "-"), ("product", "*"), ("quotient", "/")]
    rows = []
    for index in range(count):
        name, op = ops[index % len(ops)]
        a, b = rng.choice("abxyz"), rng.choice("cduvw")
        instruction = f"Write a Python function that returns the {name} of {a} and {b}."
        response = f"```python\ndef {name}({a}, {b}):\n    return {a} {op} {b}\n```"
        rows.append(
            {
                "instruction": instruction,
                "response": response,
                "messages": [
                    {"role": "user", "content": instruction},
                    {"role": "assistant", "content": response},
                ],
            }
        )
    return rows


@pytest.fixture(scope="module")
def arena(tmp_path_factory) -> Path:
    """A folder with arena.yaml, the base model in base/ and sft_final v1 in the hub store."""
    root = tmp_path_factory.mktemp("train")
    build_tiny_llama(root / "base")
    (root / "arena.yaml").write_text(CONFIG)
    store = LocalHubStore(HubConfig(root=root / "hub"))
    store.publish("sft_final", Dataset.from_list(_rows()),
                  lambda ref: f"# sft_final {ref.version}\n")
    return root


def _train(arena: Path, *args: str, processes: int = 1, output: str = "out"):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(HF_HUB_OFFLINE="1", DS_ACCELERATOR="cpu", TOKENIZERS_PARALLELISM="false")
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions"))
    if processes > 1:
        env["OMP_NUM_THREADS"] = "1"
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    else:
        launcher = []
    command = [sys.executable, *launcher, "-m", "warriorcoder.training.sft"]
    command += ["--config", "arena.yaml", "--output-dir", output, *args]
    done = subprocess.run(command, cwd=arena, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    result = json.loads((arena / output / "final" / "training_result.json").read_text())
    return done.stdout, result


def _check_run(arena: Path, result: dict, output: str = "out") -> None:
    """Loss went down; the checkpoint reloads whole, trained, and prompts as in training."""
    losses = [loss for _, loss in result["loss_history"]]
    assert result["global_step"] == STEPS and len(losses) == STEPS
    assert losses[-1] < 0.8 * losses[0], losses

    final = arena / output / "final"
    model, info = AutoModelForCausalLM.from_pretrained(final, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    base = AutoModelForCausalLM.from_pretrained(arena / "base").state_dict()
    trained = model.state_dict()
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in base.items()}
    assert not torch.equal(trained["model.embed_tokens.weight"], base["model.embed_tokens.weight"])

    train = TrainConfig()
    fmt = PromptFormat(train.prompt_template, train.system_line)
    tokenizer = AutoTokenizer.from_pretrained(final)
    instruction = "Write a Python function that returns the sum of a and c."
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": instruction}], add_generation_prompt=True, tokenize=False
    )
    assert rendered == fmt.prompt(instruction)


@pytest.fixture(scope="module")
def zero2_run(arena):
    """ZeRO-2, one process, dataset not given (the store's newest, printed), --push."""
    return _train(arena, "--deepspeed", "zero2", "--push")


def test_zero2_one_process_trains_records_and_publishes(arena, zero2_run):
    stdout, result = zero2_run
    assert "dataset local/warriorcoder-sft_final@v1 (the newest version in the hub store" in stdout
    assert "micro 4 x accumulation 2 x world 1; DeepSpeed zero2" in stdout
    assert result["dataset"]["version"] == "v1" and result["rows_used"] == 64
    _check_run(arena, result)

    published = arena / "hub" / "local" / "warriorcoder-model" / "v1"
    assert result["published"] == "local/warriorcoder-model@v1"
    assert (published / "model.safetensors").is_file()
    card = ModelCard.load(published / "README.md")
    assert card.data.datasets == ["local/warriorcoder-sft_final"]
    assert "local/warriorcoder-sft_final@v1" in card.text
    assert f"Final training loss: **{result['final_loss']:.4f}**" in card.text
    assert (published / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_second_identical_run_reuses_the_checkpoint_and_publishes_nothing(arena, zero2_run):
    stdout, result = _train(arena, "--deepspeed", "zero2", "--push")
    assert "reusing" in stdout and "not published again" in stdout, stdout
    assert result["published"] == zero2_run[1]["published"]
    repo = arena / "hub" / "local" / "warriorcoder-model"
    assert sorted(p.name for p in repo.iterdir()) == ["v1"]


def test_default_schedule_is_deepspeed_warmup_lr_then_constant(arena, zero2_run):
    """The paper's WarmupLR: warm up over 20% of the steps (log curve, DeepSpeed's default),
    then hold the rate; read from the Trainer's own log of the run."""
    stdout, result = zero2_run
    state = json.loads((arena / "out" / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    rates = {entry["step"]: entry["learning_rate"] for entry in state["log_history"]
             if "learning_rate" in entry}
    assert sorted(rates) == list(range(1, STEPS + 1))
    warmup, peak = result["hyperparameters"]["warmup_steps"], 0.003
    assert warmup == 4  # ceil(0.2 x 20)
    # DeepSpeed WarmupLR (log): after k scheduler steps the rate is peak x log(k) / log(warmup)
    for step in range(1, warmup + 1):
        assert rates[step] == pytest.approx(peak * math.log(step) / math.log(warmup)), rates
    assert all(rates[step] == pytest.approx(peak) for step in range(warmup, STEPS + 1)), rates
    assert result["hyperparameters"]["lr_scheduler_type"] == "warmup_lr"
    # 8 x 20 = 160 samples over 64 rows: 2.5 epochs, printed before training
    assert "2.50 epochs = global batch 8 x 20 steps / 64 rows" in stdout
    assert "[warriorcoder train] WARNING" not in stdout


def test_resume_continues_from_the_last_checkpoint(arena, zero2_run):
    _, uninterrupted = zero2_run
    shutil.copytree(arena / "out", arena / "crashed")
    shutil.rmtree(arena / "crashed" / "final")
    shutil.rmtree(arena / "crashed" / f"checkpoint-{STEPS}")  # "crashed" after step 10
    stdout, result = _train(arena, "--deepspeed", "zero2", "--resume", output="crashed")
    assert f"resuming from {arena / 'crashed' / 'checkpoint-10'}" in stdout
    assert result["global_step"] == STEPS and len(result["loss_history"]) == STEPS
    assert result["final_loss"] == pytest.approx(uninterrupted["final_loss"], abs=1e-3)


def test_zero3_one_process_with_packing_and_a_pinned_version(arena):
    stdout, result = _train(
        arena,
        "--deepspeed", "zero3",
        "--dataset", "local/warriorcoder-sft_final@v1",
        "--set", "packing=true",
        output="out_zero3",
    )  # fmt: skip
    assert "dataset local/warriorcoder-sft_final@v1 (pinned" in stdout
    assert result["hyperparameters"]["deepspeed"] == "zero3"
    assert result["hyperparameters"]["packing"] is True
    _check_run(arena, result, output="out_zero3")


@pytest.mark.multiprocess
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_processes(arena, stage):
    output = f"out_2p_{stage}"
    stdout, result = _train(
        arena, "--deepspeed", stage, "--set", "micro_batch_size=2", processes=2, output=output
    )
    assert f"micro 2 x accumulation 2 x world 2; DeepSpeed {stage}" in stdout
    assert result["hyperparameters"]["world_size"] == 2
    _check_run(arena, result, output=output)


@pytest.mark.slow
def test_zero3_cpu_offload_one_process(arena):
    """ZeRO-3 with optimizer and parameters offloaded (compiles DeepSpeedCPUAdam once, ~60 s)."""
    _, result = _train(arena, "--deepspeed", "zero3_offload", output="out_offload")
    assert result["hyperparameters"]["deepspeed"] == "zero3_offload"
    _check_run(arena, result, output="out_offload")

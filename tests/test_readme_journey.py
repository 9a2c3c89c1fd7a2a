"""The README's "Run it on your servers", run as written, so it cannot rot.

The config, the commands and the `load_dataset` code are read from the README's fenced blocks
that follow a `<!-- readme-journey: ... -->` marker, and run in a fresh folder:

- the experts' URLs are pointed at the test servers: a TGI test server per URL position for the
  `api: tgi` experts, the OpenAI-compatible test server (vLLM's dialect) for `api: openai`;
- `hub.backend: hf` goes to the Hub-protocol test server (`HF_ENDPOINT`), with the token in the
  variable the config names;
- the scale is the tests' tiny one (`SCALE`: a few instructions, a 2-step SFT of a tiny random
  Llama, 1 HumanEval problem, 2 judge-check pairs), and each expert gets the ChatML template
  inline (its tokenizer cannot be fetched offline);
- each command runs as a subprocess (the console script, torchrun) and must exit 0, and what it
  leaves is checked: versions on the Hub, the status tree, the loaded SFT rows and preference
  pairs, the checkpoint, the evals version, the judge-check table.

Breaking a command or the config in the README fails this test.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.hub_server import HubServer, hub_clients_at
from tests.support.openai_server import OpenAITestServer
from tests.support.sim_instructions import CHATML_TEMPLATE
from tests.support.tgi_server import FakeModel, TGITestServer, arena_responder
from tests.support.tiny_models import build_tiny_llama

README = Path(__file__).resolve().parents[1] / "README.md"
TOKEN = "hf_readme_journey_token"
SCALE: dict[str, Any] = {
    "generation": {"max_retries": 2, "timeout_s": 30},
    "mine": {"samples_per_config": 2, "max_new_tokens": 96},
    "filter": {"max_new_tokens": 64},
    "compress": {"size": 4, "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
                 "batch_size": 32},
    "battle": {"max_new_tokens": 40},
    "judge": {"max_new_tokens": 64},
    "select": {"elo_permutations": 10, "bootstrap_rounds": 20},
    "train": {"global_batch_size": 4, "micro_batch_size": 2, "max_steps": 2,
              "max_length": 256, "zero_stage": 2, "gradient_checkpointing": False,
              "learning_rate": 0.003},
}
"""The tests' tiny sizes, merged over the README's config (base_model: the tiny Llama)."""
COMMAND_SCALE = {
    "--nproc_per_node 8": "--nproc_per_node 2",
    "--pairs 10": "--pairs 2",
}
"""README text -> the tiny scale; each must occur in the README's commands."""
EVALUATE_SCALE = "--limit 1 --max-new-tokens 8"
SECOND_OUTPUT = "--output-dir checkpoints/two-processes"
"""The torchrun run trains again into its own folder (the first one's would be reused)."""


def readme_block(marker: str, text: str | None = None) -> str:
    """The fenced block that follows `<!-- readme-journey: <marker> ... -->` in the README."""
    text = README.read_text(encoding="utf-8") if text is None else text
    found = re.search(rf"<!-- readme-journey: {marker}\b.*?-->\s*```\w*\n(.*?)```", text, re.S)
    assert found, f"README.md has no fenced block after <!-- readme-journey: {marker} -->"
    return found[1]


def readme_commands(block: str) -> list[str]:
    """The command lines of the block, comments dropped."""
    commands = []
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Servers:
    """The test servers for the README config's experts, and the URL each README URL maps to."""

    def __init__(self, config: dict[str, Any]) -> None:
        experts = config["experts"]
        tgi = [e for e in experts if e.get("api", "tgi") == "tgi"]
        openai = [e for e in experts if e.get("api") == "openai"]
        assert tgi and openai, "the README's config has experts on TGI and on an OpenAI server"
        positions = max(len(e["urls"]) for e in tgi)
        self.tgi = [TGITestServer({e["name"]: FakeModel(e["model_id"], responder=arena_responder)
                                   for e in tgi if len(e["urls"]) > i})
                    for i in range(positions)]
        self.openai = OpenAITestServer(
            {e["name"]: FakeModel(e["model_id"], responder=arena_responder) for e in openai},
            flavor="vllm")
        self.hub = HubServer(token=TOKEN)

    def start(self) -> Servers:
        for server in (*self.tgi, self.openai, self.hub):
            server.start()
        return self

    def stop(self) -> None:
        for server in (*self.tgi, self.openai, self.hub):
            server.stop()

    def url(self, expert: dict[str, Any], index: int, readme_url: str) -> str:
        assert urlsplit(readme_url).scheme in ("http", "https"), readme_url
        if expert.get("api") == "openai":
            suffix = "/v1" if readme_url.rstrip("/").endswith("/v1") else ""
            return self.openai.url(expert["name"]) + suffix
        return self.tgi[index].url(expert["name"])


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The README's config, the servers it runs against, and a folder to run in."""
    readme = README.read_text(encoding="utf-8")
    config = yaml.safe_load(readme_block("config", readme))
    folder = tmp_path_factory.mktemp("journey")
    servers = Servers(config).start()
    try:
        for expert in config["experts"]:
            expert["urls"] = [servers.url(expert, i, url) for i, url in enumerate(expert["urls"])]
            expert["chat_template"] = CHATML_TEMPLATE
        base = build_tiny_llama(folder / "tiny-base")
        run_config = _merge(config, {**SCALE, "train": {**SCALE["train"],
                                                        "base_model": str(base)}})
        env = {k: v for k, v in os.environ.items()
               if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "HF_TOKEN")}
        env.update(servers.hub.client_env())
        env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                   HF_HOME=str(folder / "hf-home"), DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1",
                   TOKENIZERS_PARALLELISM="false")
        env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions"))
        with hub_clients_at(servers.hub.url):  # this process's checks ask the test Hub too
            yield {"readme": readme, "config": config, "run_config": run_config,
                   "folder": folder, "servers": servers, "env": env}
    finally:
        servers.stop()


def _run(command: str, journey: dict[str, Any], timeout: int = 400) -> str:
    done = subprocess.run(shlex.split(command), cwd=journey["folder"], env=journey["env"],
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"README command failed: {command}\n{output[-6000:]}"
    return output


def _scaled(command: str) -> str:
    for readme_text, tiny in COMMAND_SCALE.items():
        command = command.replace(readme_text, tiny)
    if " evaluate " in f" {command} ":
        command += f" {EVALUATE_SCALE}"
    if command.startswith("torchrun "):
        command += f" {SECOND_OUTPUT}"
    return command


@pytest.mark.slow
def test_the_readme_journey_runs_as_written(journey: dict[str, Any]) -> None:
    from huggingface_hub import HfApi

    readme, folder, config = journey["readme"], journey["folder"], journey["config"]
    block = readme_block("commands", readme)
    commands = readme_commands(block)
    for readme_text in COMMAND_SCALE:
        assert readme_text in block, f"the README's commands no longer hold {readme_text!r}"
    token_env = config["hub"]["token_env"]
    exports = [c for c in commands if c.startswith("export ")]
    assert [c.split("=")[0] for c in exports] == [f"export {token_env}"], exports
    journey["env"][token_env] = TOKEN
    org = config["hub"]["namespace"]
    prefix = config["hub"].get("prefix", "warriorcoder")
    api = HfApi(endpoint=journey["servers"].hub.url, token=TOKEN)
    outputs: dict[str, str] = {}

    for command in commands:
        if command.startswith("export "):
            continue
        words = shlex.split(command)
        outputs[words[1] if words[0] == "warriorcoder" else words[0]] = output = _run(
            _scaled(command), journey)
        if words[:2] == ["warriorcoder", "init"]:
            # the README: "put the experts above in it" -- the README's config, at test scale
            written = folder / words[2]
            assert yaml.safe_load(written.read_text())["experts"], "init wrote a config"
            written.write_text(yaml.safe_dump(journey["run_config"], sort_keys=False))
        elif words[:2] == ["warriorcoder", "run"] and "--dry-run" in words:
            assert "Cost plan" in output
            assert not api.repo_exists(f"{org}/{prefix}-mined_raw", repo_type="dataset")
        elif words[:2] == ["warriorcoder", "run"]:
            refs = api.list_repo_refs(f"{org}/{prefix}-sft_final", repo_type="dataset")
            assert [t.name for t in refs.tags] == ["v1"], output[-3000:]

    status = outputs["status"]
    for dataset in ("mined_raw", "filtered", "compressed", "battles", "votes", "sft_final"):
        assert f"{org}/{prefix}-{dataset}" in status, status
    model_tags = api.list_repo_refs(f"{org}/{prefix}-model", repo_type="model").tags
    assert [t.name for t in model_tags] == ["v1"], "train --push published the checkpoint"
    assert (folder / "checkpoints" / "two-processes" / "final").is_dir(), "torchrun trained"
    evals = api.list_repo_refs(f"{org}/{prefix}-evals", repo_type="dataset").tags
    assert [t.name for t in evals] == ["v1"], "evaluate --publish published evals v1"
    table = [line for line in outputs["check-judges"].splitlines() if line.startswith("| ")]
    assert table[0].startswith("| judge |") and {line.split(" | ")[0][2:] for line in table[2:]} \
        == {e["name"] for e in config["experts"]}, "every expert was asked as a judge"

    # the README's load_dataset code, from anywhere, against the Hub
    code = readme_block("load", readme)
    check = code + (
        "assert len(sft) > 0 and sft[0]['messages'][-1]['role'] == 'assistant'\n"
        "assert len(pairs) > 0 and set(pairs.column_names) >= {'prompt', 'chosen', 'rejected'}\n"
        "print(len(sft), len(pairs))\n")
    _run(f"{sys.executable} -c {shlex.quote(check)}", journey, timeout=120)


def test_the_readme_config_is_a_valid_arena_config() -> None:
    """Fast: the README's config loads as it is written (the journey runs it scaled down)."""
    from warriorcoder.config import parse_config

    config = parse_config(readme_block("config"), source="README.md")
    assert {e.api for e in config.experts} == {"tgi", "openai"}
    assert config.hub.backend == "hf" and config.hub.token_env


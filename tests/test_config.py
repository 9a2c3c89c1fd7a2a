"""The arena config: paper defaults, and errors that name the field and the line."""

from pathlib import Path

import pytest

from warriorcoder.config import ConfigError, load_config, parse_config

MINIMAL = """\
experts:
  - name: qwen
    model_id: Qwen/Qwen2.5-72B-Instruct
    urls: [http://127.0.0.1:8080]
  - name: llama
    model_id: meta-llama/Llama-3.3-70B-Instruct
    urls: [http://127.0.0.1:8081/]
"""


def test_paper_defaults():
    config = parse_config(MINIMAL)
    assert [(t, p) for t in config.mine.temperatures for p in config.mine.top_ps] == [
        (t, p) for t in (1.0, 1.1, 1.2) for p in (0.99, 0.995, 1.0)
    ]
    assert config.filter.min_difficulty == 6
    assert (config.select.k, config.select.alpha) == (40, 0.7)
    train = config.train
    assert (train.global_batch_size, train.max_steps, train.learning_rate) == (512, 448, 1e-5)
    assert (train.weight_decay, train.warmup_ratio) == (3e-7, 0.2)
    assert config.experts[1].urls == ["http://127.0.0.1:8081"]
    assert config.hub.repo_id("votes") == "local/warriorcoder-votes"


def test_typo_names_field_and_line():
    text = MINIMAL + "filter:\n  min_dificulty: 5\n"
    with pytest.raises(ConfigError) as error:
        parse_config(text, source="arena.yaml")
    assert "filter.min_dificulty" in str(error.value)
    assert "arena.yaml, line 9" in str(error.value)
    assert "unknown field" in str(error.value)


def test_threshold_out_of_range_names_field_and_line():
    with pytest.raises(ConfigError) as error:
        parse_config(MINIMAL + "filter:\n  min_difficulty: 11\n", source="arena.yaml")
    assert "filter.min_difficulty (arena.yaml, line 9)" in str(error.value)


def test_unknown_expert_is_named():
    with pytest.raises(ConfigError) as error:
        parse_config(MINIMAL + "judge:\n  judges: [qwen, gpt4]\n")
    assert "'gpt4'" in str(error.value) and "judge.judges" in str(error.value)


def test_missing_url_names_the_expert_and_its_line():
    text = MINIMAL + "  - name: deepseek\n    model_id: deepseek-ai/DeepSeek-Coder-V2-Lite\n"
    with pytest.raises(ConfigError) as error:
        parse_config(text, source="arena.yaml")
    message = str(error.value)
    assert "experts.2" in message and "line 8" in message
    assert "'deepseek' needs exactly one of `urls`" in message


def test_not_a_url_and_duplicate_names():
    with pytest.raises(ConfigError, match=r"experts\.0\.urls.*not an http"):
        parse_config(MINIMAL.replace("http://127.0.0.1:8080", "127.0.0.1:8080"))
    with pytest.raises(ConfigError, match="repeated: \\['qwen'\\]"):
        parse_config(MINIMAL.replace("name: llama", "name: qwen"))


def test_load_resolves_paths_from_the_file(tmp_path: Path):
    path = tmp_path / "arena.yaml"
    path.write_text(MINIMAL + "hub:\n  root: out/hub\n")
    config = load_config(path)
    assert config.hub.root == tmp_path / "out" / "hub"
    assert config.generation.journal.is_relative_to(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_shipped_examples_are_valid():
    from importlib.resources import files

    parse_config(files("warriorcoder").joinpath("templates/arena.yaml").read_text())
    load_config(Path(__file__).parents[1] / "examples" / "embedded.yaml")

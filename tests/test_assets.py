"""Packaged models: a GGUF split over several PyPI packages is assembled once, verified, and a
missing, truncated or damaged part is an AssetError naming the package to reinstall."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import pytest

from warriorcoder import assets
from warriorcoder.assets import QWEN_CODER_05B, Part, SplitGGUF, assemble, resolve_model
from warriorcoder.errors import AssetError

PIECES = [b"GGUF" + bytes(range(256)) * 40, b"middle part " * 300, b"the end" * 77]


def _fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str) -> SplitGGUF:
    """Three importable fake part packages on sys.path, and the SplitGGUF they make."""
    site = tmp_path / "site"
    parts = []
    for index, piece in enumerate(PIECES, start=1):
        module = f"wc_fake_{tag}_part{index}"
        (site / module / "data").mkdir(parents=True)
        (site / module / "__init__.py").write_text("")
        (site / module / "data" / f"part{index:02d}.bin").write_bytes(piece)
        parts.append(Part(module.replace("_", "-"), module, f"data/part{index:02d}.bin",
                          len(piece), hashlib.sha256(piece).hexdigest()))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    whole = b"".join(PIECES)
    return SplitGGUF(name=f"fake-{tag}", file_name="fake.gguf", version="1.0", size=len(whole),
                     sha256=hashlib.sha256(whole).hexdigest(), parts=tuple(parts))


def _part_file(model: SplitGGUF, index: int) -> Path:
    return assets.part_path(model.parts[index])


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WARRIORCODER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def test_assembles_the_parts_in_order_into_the_cache(tmp_path, monkeypatch, cache) -> None:
    model = _fake_model(tmp_path, monkeypatch, "ok")
    path = assemble(model)
    assert path == cache / "fake-ok" / "fake.gguf"
    assert path.read_bytes() == b"".join(PIECES)
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.gguf", "fake.gguf.verified"]


def test_a_second_call_reuses_the_file_without_hashing_it(tmp_path, monkeypatch, cache) -> None:
    model = _fake_model(tmp_path, monkeypatch, "reuse")
    path = assemble(model)
    mtime = path.stat().st_mtime_ns

    def no_hashing(_: Path) -> str:
        raise AssertionError("the verified file was hashed again")

    monkeypatch.setattr(assets, "_sha256_of", no_hashing)
    for index in range(len(PIECES)):  # the parts are not needed any more either
        _part_file(model, index).unlink()
    assert assemble(model) == path
    assert path.stat().st_mtime_ns == mtime


def test_a_changed_cached_file_is_rebuilt(tmp_path, monkeypatch, cache) -> None:
    model = _fake_model(tmp_path, monkeypatch, "changed")
    path = assemble(model)
    path.write_bytes(b"GGUF" + b"\0" * (model.size - 4))  # same size, other bytes
    os.utime(path, ns=(1, 1))
    assert assemble(model).read_bytes() == b"".join(PIECES)


def test_wrong_hash_names_the_damaged_package(tmp_path, monkeypatch, cache) -> None:
    model = _fake_model(tmp_path, monkeypatch, "hash")
    damaged = _part_file(model, 1)
    data = bytearray(damaged.read_bytes())
    data[10] ^= 0xFF  # same size, one byte flipped
    damaged.write_bytes(bytes(data))
    with pytest.raises(AssetError) as error:
        assemble(model)
    message = str(error.value)
    assert "sha256" in message and model.parts[1].package in message
    assert model.parts[0].package not in message and model.parts[2].package not in message
    assert "pip install --force-reinstall" in message
    assert not (cache / "fake-hash" / "fake.gguf").exists()
    assert not list((cache / "fake-hash").glob("*.partial"))


def test_missing_part_package_is_named(tmp_path, monkeypatch, cache) -> None:
    model = _fake_model(tmp_path, monkeypatch, "missing")
    gone = SplitGGUF(**{**model.__dict__, "parts": (*model.parts[:2], Part(
        "wc-fake-not-installed", "wc_fake_not_installed_part3", "data/part03.bin", 1, "0"))})
    with pytest.raises(AssetError, match="wc-fake-not-installed.*is not installed"):
        assemble(gone)
    assert not (cache / "fake-missing").exists()


def test_missing_part_file_in_an_installed_package(tmp_path, monkeypatch, cache) -> None:
    model = _fake_model(tmp_path, monkeypatch, "nofile")
    _part_file(model, 2).unlink()
    with pytest.raises(AssetError, match=f"{model.parts[2].package} is installed but lacks"):
        assemble(model)


def test_truncated_part_is_named_before_anything_is_written(tmp_path, monkeypatch,
                                                            cache) -> None:
    model = _fake_model(tmp_path, monkeypatch, "short")
    short = _part_file(model, 0)
    short.write_bytes(short.read_bytes()[:-100])
    with pytest.raises(AssetError) as error:
        assemble(model)
    assert f"expected {model.parts[0].size:,}" in str(error.value)
    assert model.parts[0].package in str(error.value)
    assert not (cache / "fake-short").exists()


def test_a_hub_alias_whose_packages_are_absent_stays_a_hub_id(monkeypatch) -> None:
    monkeypatch.setitem(assets.PACKAGES, "qwen2.5-coder-0.5b-instruct", ("wc_not_installed",))
    resolved = resolve_model("Qwen/Qwen2.5-Coder-0.5B-Instruct")
    assert resolved.path == Path("Qwen/Qwen2.5-Coder-0.5B-Instruct")


@pytest.mark.slow
def test_the_packaged_qwen_coder_assembles_and_reads_as_gguf(cache) -> None:
    """The real packages (installed by the `assets` extra): ~0.5 GB hashed once."""
    gguf = pytest.importorskip("gguf")
    model = resolve_model("embedded:qwen2.5-coder-0.5b-instruct")
    path = model.path / str(model.gguf_file)
    assert path.stat().st_size == QWEN_CODER_05B.size
    reader = gguf.GGUFReader(path)
    field = reader.fields["general.architecture"]
    assert bytes(field.parts[field.data[0]]).decode() == "qwen2"
    assert any(t.name == "token_embd.weight" for t in reader.tensors)
    assert resolve_model("Qwen/Qwen2.5-Coder-0.5B-Instruct") == model

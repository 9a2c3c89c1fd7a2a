"""The hub store: versions that a downstream user loads with plain `datasets`, on both backends.

The Hub backend runs the real `huggingface_hub` and `datasets` clients against the
Hub-protocol test server in `tests.support.hub_server`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import huggingface_hub.constants as hub_constants
import pytest
from huggingface_hub import DatasetCard, HfApi

from tests.support.hub_server import HubServer, hub_clients_at
from warriorcoder.config import HubConfig
from warriorcoder.errors import HubAuthError, SpecError, VersionNotFoundError
from warriorcoder.hub import (
    HfHubStore,
    HubError,
    HubStore,
    LocalHubStore,
    VersionRef,
    open_store,
    parse_spec,
)

TOKEN = "hf_TESTtokenNeverInAnyFile0123456789"
TOKEN_ENV = "WARRIORCODER_TEST_HUB_TOKEN"
PHASE = "votes"


def make_card(parent: str) -> Callable[[VersionRef], str]:
    """A minimal card: Hub metadata with `configs`, the version it describes and a parent line."""

    def render(ref: VersionRef) -> str:
        metadata = textwrap.dedent(
            f"""\
            ---
            license: apache-2.0
            configs:
            - config_name: default
              data_files:
              - split: train
                path: {ref.data_files}
            ---
            """
        )
        body = [
            f"# {ref.repo_id}",
            f"Version: {ref.version} (revision {ref.revision})",
            f"Parent: {parent}",
            f"```python\n{ref.load_snippet()}```",
        ]
        return metadata + "\n\n".join(body) + "\n"

    return render


def instructions(tag: str, n: int = 3) -> list[str]:
    return [f"{tag}-{i}" for i in range(n)]


def rows(tag: str, n: int = 3) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"instruction": instructions(tag, n), "score": [float(i) for i in range(n)]}
    )


def loaded(dataset: datasets.Dataset) -> list[str]:
    return list(dataset["instruction"])


@dataclass
class Backend:
    """A store plus what a downstream user would do to read its versions."""

    name: str
    store: HubStore
    server: HubServer | None
    cache: Path

    def user_load(self, ref: VersionRef) -> datasets.Dataset:
        if self.name == "local":
            return datasets.load_dataset(ref.location, split="train", cache_dir=str(self.cache))
        return datasets.load_dataset(
            ref.repo_id, revision=ref.version, split="train", cache_dir=str(self.cache)
        )

    def user_card(self, ref: VersionRef) -> DatasetCard:
        if self.name == "local":
            return DatasetCard.load(Path(ref.location) / "README.md")
        api = HfApi(endpoint=self.server.url)
        readme = api.hf_hub_download(
            ref.repo_id, "README.md", repo_type="dataset", revision=ref.version
        )
        return DatasetCard.load(readme)

    def files(self, ref: VersionRef) -> set[str]:
        if self.name == "local":
            folder = Path(ref.location)
            return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        return set(self.server.repo_files(ref.repo_id, ref.version)) - {".gitattributes"}


@pytest.fixture(scope="module")
def hub_server() -> Iterator[HubServer]:
    with HubServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return tmp_path / "user-cache"


def hf_backend(server: HubServer, tmp_path: Path, cache: Path) -> Backend:
    namespace = "ns-" + tmp_path.name.replace("_", "-")  # one namespace per test on the server
    hub = HubConfig(
        backend="hf", endpoint=server.url, namespace=namespace, prefix="wc", token_env=TOKEN_ENV
    )
    return Backend("hf", open_store(hub), server, cache)


@pytest.fixture(params=["local", "hf"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, isolated_caches: Path
) -> Iterator[Backend]:
    if request.param == "local":
        hub = HubConfig(backend="local", root=tmp_path / "hub", namespace="ns", prefix="wc")
        yield Backend("local", open_store(hub), None, isolated_caches)
        return
    server = request.getfixturevalue("hub_server")
    with hub_clients_at(server.url):
        yield hf_backend(server, tmp_path, isolated_caches)


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(HubConfig(root=tmp_path)), LocalHubStore)
    hf = open_store(HubConfig(backend="hf", endpoint="http://127.0.0.1:1"))
    assert isinstance(hf, HfHubStore)


def test_two_versions_load_back_with_plain_load_dataset(backend: Backend) -> None:
    store = backend.store
    v1 = store.publish(PHASE, rows("first"), make_card("none"))
    parent_line = f"{v1.spec()} (revision {v1.revision})"
    v2 = store.publish(PHASE, rows("second", n=4), make_card(parent_line))

    assert (v1.version, v2.version) == ("v1", "v2")
    assert v1.repo_id == v2.repo_id == store.hub.repo_id(PHASE)
    assert v1.revision != v2.revision
    assert loaded(backend.user_load(v1)) == instructions("first")
    assert loaded(backend.user_load(v2)) == instructions("second", n=4)
    assert loaded(store.load(PHASE, "v1")) == instructions("first")
    assert list(store.load(PHASE, "v2")["score"]) == [0.0, 1.0, 2.0, 3.0]

    card = backend.user_card(v2)
    assert card.data.configs[0]["data_files"][0]["path"] == v2.data_files != v1.data_files
    assert f"Parent: {parent_line}" in card.text
    assert "Version: v2" in card.text
    assert store.read_card(PHASE, "v1").count("Parent: none") == 1

    namespace: dict[str, object] = {}
    exec(v1.load_snippet(), namespace)  # the snippet the card shows loads exactly v1
    assert loaded(namespace["ds"]) == instructions("first")


def test_versions_latest_and_get(backend: Backend) -> None:
    store = backend.store
    repo_id = store.hub.repo_id(PHASE)
    assert store.versions(PHASE) == []
    assert store.latest(PHASE) is None
    with pytest.raises(HubError, match=f"{repo_id} has no version v1.*none published yet"):
        store.get(PHASE, "v1")

    refs = [store.publish(PHASE, rows(tag), make_card("none")) for tag in ("a", "b")]
    assert store.versions(PHASE) == refs
    assert store.latest(PHASE) == refs[1]
    assert store.get(PHASE, "v1") == refs[0]
    assert refs[0].spec() == f"{repo_id}@v1"
    assert parse_spec(refs[1].spec()) == (repo_id, "v2")
    assert store.versions("filtered") == []  # other datasets are other repos
    with pytest.raises(VersionNotFoundError,
                       match=f"{repo_id} has no version v3.*known versions: v1, v2"):
        store.get(PHASE, "v3")
    with pytest.raises(SpecError, match="not a version name"):
        store.get(PHASE, "2")
    with pytest.raises(HubError, match="not a dataset name"):
        store.versions("../votes")


def test_each_version_holds_only_its_own_files(backend: Backend) -> None:
    store = backend.store
    store.max_shard_bytes = 64  # several parquet shards for the larger first version
    figure = b"\x89PNG\r\n\x1a\nnot really a png"
    v1 = store.publish(PHASE, rows("big", n=12), make_card("none"), files={"figures/a.png": figure})
    store.max_shard_bytes = 1 << 30
    v2 = store.publish(PHASE, rows("small", n=2), make_card(v1.spec()))

    v1_files, v2_files = backend.files(v1), backend.files(v2)
    assert "figures/a.png" in v1_files and "figures/a.png" not in v2_files
    assert len([f for f in v1_files if f.startswith("data/")]) > 1
    assert len(v2_files) == 2 and "README.md" in v2_files
    assert re.fullmatch(r"data/train-00000-of-00001-[0-9a-f]{12}\.parquet", sorted(v2_files)[1])
    assert loaded(backend.user_load(v1)) == instructions("big", n=12)
    assert loaded(backend.user_load(v2)) == instructions("small", n=2)


def test_failed_publish_leaves_no_visible_version(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.store
    store.publish(PHASE, rows("good"), make_card("none"))

    def broken_card(ref: VersionRef) -> str:
        raise RuntimeError("card template failed")

    with pytest.raises(RuntimeError, match="card template failed"):
        store.publish(PHASE, rows("bad"), broken_card)
    with pytest.raises(HubError, match="0 rows"):
        store.publish(PHASE, rows("empty", n=0), make_card("none"))
    with pytest.raises(HubError, match="relative path"):
        store.publish(PHASE, rows("bad"), make_card("none"), files={"../escape.png": b"x"})
    with pytest.raises(HubError, match="written by the store"):
        store.publish(PHASE, rows("bad"), make_card("none"), files={"data/extra.parquet": b"x"})

    def half_written(self: datasets.Dataset, path: str, **kwargs: object) -> int:
        Path(path).write_bytes(b"PAR1 truncated")
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(datasets.Dataset, "to_parquet", half_written)
        with pytest.raises(OSError, match="disk full"):
            store.publish(PHASE, rows("bad"), make_card("none"))

    assert [ref.version for ref in store.versions(PHASE)] == ["v1"]
    if backend.name == "local":  # no partial folder is left behind
        assert sorted(p.name for p in Path(store.repo_dir(PHASE)).iterdir()) == ["v1"]
    v2 = store.publish(PHASE, rows("next"), make_card("v1"))
    assert v2.version == "v2"
    assert loaded(backend.user_load(v2)) == instructions("next")


def test_concurrent_publishes_get_distinct_versions(backend: Backend) -> None:
    store, publishers = backend.store, 3
    store.publish(PHASE, rows("base"), make_card("none"))  # the repo exists before the race
    barrier = threading.Barrier(publishers, timeout=60)
    results: dict[str, VersionRef] = {}
    errors: list[BaseException] = []

    def publish(tag: str) -> None:
        first_render = True

        def render(ref: VersionRef) -> str:
            nonlocal first_render
            if first_render:  # every publisher has planned its version before any writes
                first_render = False
                barrier.wait()
            return make_card(tag)(ref)

        try:
            results[tag] = store.publish(PHASE, rows(tag), render)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(f"t{i}",)) for i in range(publishers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    versions = sorted(ref.version for ref in results.values())
    assert versions == ["v2", "v3", "v4"]
    assert [ref.version for ref in store.versions(PHASE)] == ["v1", "v2", "v3", "v4"]
    for tag, ref in results.items():
        assert loaded(backend.user_load(ref)) == instructions(tag)
        card = store.read_card(PHASE, ref.version)
        assert f"Version: {ref.version} " in card and f"Parent: {tag}" in card
    if backend.server is not None:  # the race really happened and was resolved by retrying
        commits = [c for c in backend.server.calls if c.path.endswith("/commit/main")]
        assert any(c.status == 412 for c in commits)


def test_local_publishes_from_two_processes_get_distinct_versions(
    tmp_path: Path, isolated_caches: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, datasets
        from warriorcoder.config import HubConfig
        from warriorcoder.hub import open_store
        store = open_store(HubConfig(root={str(tmp_path)!r}, namespace="n"))
        for i in range(3):
            rows = datasets.Dataset.from_dict({{"who": [sys.argv[1]], "i": [i]}})
            store.publish("mined_raw", rows, lambda ref: f"---\\n---\\nversion {{ref.version}}\\n")
        """
    )
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, who], env=env) for who in ("a", "b")
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]

    store = open_store(HubConfig(root=tmp_path, namespace="n"))
    refs = store.versions("mined_raw")
    assert [ref.version for ref in refs] == [f"v{n}" for n in range(1, 7)]
    seen = set()
    for ref in refs:
        assert store.read_card("mined_raw", ref.version).strip().endswith(f"version {ref.version}")
        loaded = store.load("mined_raw", ref.version)
        seen.add((loaded["who"][0], loaded["i"][0]))
    assert seen == {(who, i) for who in "ab" for i in range(3)}


def test_hub_token_is_used_but_never_stored(
    hub_server: HubServer, tmp_path: Path, isolated_caches: Path
) -> None:
    server, first_call = hub_server, len(hub_server.calls)
    with hub_clients_at(server.url):
        store = hf_backend(server, tmp_path, isolated_caches).store
        ref = store.publish(PHASE, rows("secret"), make_card("none"), files={"notes.txt": b"hi"})
        card = store.read_card(PHASE, ref.version)
    # Every write the store made carried the token (LFS uploads go to pre-signed URLs).
    writes = [c for c in server.calls[first_call:] if c.method == "POST"]
    assert writes and all(c.authorized for c in writes)
    with server.state.lock:
        blobs = [
            stored.data
            for repo in server.state.repos.values()
            for commit in repo.commits.values()
            for stored in commit.files.values()
        ]
    assert blobs and not any(TOKEN.encode() in blob for blob in blobs)
    assert TOKEN not in card and TOKEN not in ref.load_snippet() and TOKEN not in repr(ref)


def test_hub_load_with_an_endpoint_datasets_was_not_imported_with(
    hub_server: HubServer, isolated_caches: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `hub.endpoint` names the server, but `datasets` still points at its import-time endpoint.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_DISABLE_XET", True)
    hub = HubConfig(backend="hf", endpoint=hub_server.url, namespace="elsewhere",
                    token_env=TOKEN_ENV)
    store = open_store(hub)
    store.publish(PHASE, rows("one"), make_card("none"))
    store.publish(PHASE, rows("two"), make_card("v1"))
    assert hub_server.url != datasets.config.HF_ENDPOINT
    assert loaded(store.load(PHASE, "v1")) == instructions("one")
    assert loaded(store.load(PHASE, "v2")) == instructions("two")


def test_downstream_user_in_a_fresh_process(hub_server: HubServer, isolated_caches: Path) -> None:
    hub = HubConfig(backend="hf", endpoint=hub_server.url, namespace="fresh", token_env=TOKEN_ENV)
    with hub_clients_at(hub_server.url):
        store = open_store(hub)
        store.publish(PHASE, rows("old"), make_card("none"))
        v2 = store.publish(PHASE, rows("new", n=2), make_card("v1"))
    script = textwrap.dedent(
        f"""
        import json
        from datasets import load_dataset
        from huggingface_hub import DatasetCard, hf_hub_download
        ds = load_dataset({v2.repo_id!r}, revision="v1", split="train")
        card = DatasetCard.load({v2.repo_id!r}, repo_type="dataset")  # main = the latest
        print(json.dumps([list(ds["instruction"]), card.text]))
        """
    )
    env = {**os.environ, **hub_server.client_env(), "HF_HOME": str(isolated_caches)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    names, card_text = json.loads(out.stdout.strip().splitlines()[-1])
    assert names == instructions("old")
    assert "Version: v2" in card_text


def test_same_version_of_two_repos_loads_its_own_rows_from_folders(tmp_path: Path) -> None:
    """`datasets` caches a local folder by its name and `configs:`; v1 of two repos must not
    share that cache (same row count and columns, as in a real pipeline)."""
    store = LocalHubStore(HubConfig(root=tmp_path / "hub"))
    first = store.publish("mined_raw", rows("first"), make_card("none"))
    second = store.publish("filtered", rows("second"), make_card(first.spec()))
    assert first.version == second.version == "v1"
    for ref, tag in ((first, "first"), (second, "second")):
        loaded_rows = datasets.load_dataset(ref.location, split="train")  # the card's snippet
        assert loaded_rows["instruction"] == instructions(tag)


def test_a_refused_token_says_what_to_do(
    hub_server: HubServer, tmp_path: Path, isolated_caches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV)  # no token: the server refuses to write
    with hub_clients_at(hub_server.url):
        store = hf_backend(hub_server, tmp_path, isolated_caches).store
        with pytest.raises(HubAuthError) as error:
            store.publish(PHASE, rows("x"), make_card("none"))
    message = str(error.value)
    assert "HTTP 401" in message and "hub.token_env" in message and TOKEN not in message


def test_checkpoints_are_numbered_versions_of_the_model_repo_on_both_backends(
    backend: Backend, tmp_path: Path
) -> None:
    from warriorcoder.training.publish import publish_checkpoint

    checkpoint = tmp_path / "final"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "README.md").write_text("---\nlicense: apache-2.0\n---\n# model card\n")
    first = publish_checkpoint(checkpoint, backend.store.hub)
    (checkpoint / "config.json").write_text('{"step": 2}')
    second = publish_checkpoint(checkpoint, backend.store.hub)
    assert (first.version, second.version) == ("v1", "v2")
    assert first.repo_id == backend.store.hub.repo_id("model")
    assert [ref.version for ref in backend.store.versions("model")] == ["v1", "v2"]
    assert "# model card" in backend.store.read_card("model", "v2")
    if backend.name == "hf":
        api = HfApi(endpoint=backend.server.url)
        config = api.hf_hub_download(first.repo_id, "config.json", revision="v1")
        assert Path(config).read_text() == "{}"  # v1 kept its own files


def test_a_rerun_reuses_the_version_on_both_backends(backend: Backend, monkeypatch) -> None:
    from warriorcoder.builders import REGISTRY
    from warriorcoder.builders.base import PhaseOutput
    from warriorcoder.config import ArenaConfig
    from warriorcoder.dataset_cards import CardContent
    from warriorcoder.runner import run_phase

    def fake_mine(phase_input):
        data = {"id": ["1"], "expert": ["a"], "instruction": ["x"]}
        return PhaseOutput(datasets.Dataset.from_dict(data), CardContent(counts=[("mined", 1)]))

    monkeypatch.setattr(REGISTRY["mine"], "build", fake_mine)
    monkeypatch.setattr(REGISTRY["mine"], "uses_experts", False)
    config = ArenaConfig.model_validate({
        "hub": backend.store.hub.model_dump(),
        "experts": [{"name": "a", "model_id": "a", "urls": ["http://127.0.0.1:9"]},
                    {"name": "b", "model_id": "b", "urls": ["http://127.0.0.1:9"]}],
    })
    first = run_phase("mine", config, store=backend.store)
    again = run_phase("mine", config, store=backend.store)
    assert not first.reused and again.reused and again == first
    assert [ref.version for ref in backend.store.versions("mined_raw")] == ["v1"]


def test_every_phase_dataset_is_a_registered_artifact_written_by_that_phase() -> None:
    from warriorcoder.builders import REGISTRY
    from warriorcoder.hub import ARTIFACTS, get_artifact

    for phase in REGISTRY.values():
        assert get_artifact(phase.dataset).command == phase.name
    assert [a.name for a in ARTIFACTS][: len(REGISTRY)] == [p.dataset for p in REGISTRY.values()]
    assert get_artifact("model").repo_type == "model"

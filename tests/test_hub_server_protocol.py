"""The Hub test server answers the real `huggingface_hub` / `datasets` clients like the Hub."""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import huggingface_hub.constants as hub_constants
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, HfFileSystem
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.support.hub_server import HubServer, hub_clients_at

TOKEN = "hf_protocol_test_token"
REPO = "org/data"
CARD = b"---\nconfigs:\n- config_name: default\n  data_files: data/*.parquet\n---\n# data\n"


@pytest.fixture
def server(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    with HubServer(token=TOKEN) as running, hub_clients_at(running.url):
        yield running


@pytest.fixture
def api(server: HubServer) -> HfApi:
    return HfApi(endpoint=server.url, token=TOKEN)


def publish(api: HfApi, tmp_path, values: list[int], tag: str) -> str:
    path = tmp_path / f"{tag}.parquet"
    datasets.Dataset.from_dict({"x": values}).to_parquet(str(path))
    operations = [
        CommitOperationAdd("README.md", CARD),
        CommitOperationAdd("data/part.parquet", str(path)),
    ]
    commit = api.create_commit(REPO, operations, commit_message=tag, repo_type="dataset")
    api.create_tag(REPO, tag=tag, revision=commit.oid, repo_type="dataset")
    return commit.oid


def test_tags_pin_commits_and_trees_list_them(api: HfApi, tmp_path) -> None:
    api.create_repo(REPO, repo_type="dataset")
    first = publish(api, tmp_path, [1, 2], "v1")
    second = publish(api, tmp_path, [3], "v2")

    refs = api.list_repo_refs(REPO, repo_type="dataset")
    assert {tag.name: tag.target_commit for tag in refs.tags} == {"v1": first, "v2": second}
    assert [b.target_commit for b in refs.branches if b.name == "main"] == [second]
    titles = [c.title for c in api.list_repo_commits(REPO, repo_type="dataset")]
    assert titles == ["v2", "v1", "initial commit"]
    assert api.dataset_info(REPO, revision="v1").sha == first

    top = {e.path for e in api.list_repo_tree(REPO, repo_type="dataset", revision="v1")}
    assert top == {".gitattributes", "README.md", "data"}
    deep = api.list_repo_tree(REPO, repo_type="dataset", revision="v1", recursive=True)
    parquet = next(e for e in deep if e.path == "data/part.parquet")
    assert parquet.lfs is not None and parquet.size == parquet.lfs.size
    info = api.get_paths_info(REPO, ["data", "README.md", "missing"], repo_type="dataset")
    assert sorted(e.path for e in info) == ["README.md", "data"]


def test_streaming_reads_byte_ranges_of_a_tagged_version(
    server: HubServer, api: HfApi, tmp_path
) -> None:
    api.create_repo(REPO, repo_type="dataset")
    publish(api, tmp_path, list(range(100)), "v1")
    publish(api, tmp_path, [-1], "v2")

    streamed = datasets.load_dataset(REPO, revision="v1", split="train", streaming=True)
    assert [row["x"] for row in streamed] == list(range(100))
    fs = HfFileSystem(endpoint=server.url, token=TOKEN)
    with fs.open(f"datasets/{REPO}@v1/README.md", "rb") as handle:
        handle.seek(4)
        assert handle.read(7) == CARD[4:11]


def test_errors_map_to_the_clients_exceptions(api: HfApi, server: HubServer) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("org/missing")
    api.create_repo(REPO, repo_type="dataset", private=True)
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(REPO, revision="v9")
    with pytest.raises(EntryNotFoundError):
        api.hf_hub_download(REPO, "nope.txt", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without the token
        HfApi(endpoint=server.url, token=False).dataset_info(REPO)
    anonymous = HfApi(endpoint=server.url, token=False)
    with pytest.raises(HfHubHTTPError) as denied:
        anonymous.create_repo("org/other", repo_type="dataset")
    assert denied.value.response.status_code == 401


def test_a_commit_on_a_stale_parent_is_refused(api: HfApi) -> None:
    api.create_repo(REPO, repo_type="dataset")
    head = api.dataset_info(REPO).sha
    api.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id=REPO, repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_commit(
            REPO,
            [CommitOperationAdd("b.txt", b"b")],
            commit_message="late",
            repo_type="dataset",
            parent_commit=head,
        )
    assert conflict.value.response.status_code == 412
    files = api.list_repo_files(REPO, repo_type="dataset")
    assert "a.txt" in files and "b.txt" not in files


def test_calls_are_recorded(api: HfApi, server: HubServer) -> None:
    api.create_repo(REPO, repo_type="dataset")
    api.create_repo(REPO, repo_type="dataset", exist_ok=True)
    creates = [c for c in server.calls if c.path == "/api/repos/create"]
    assert [(c.method, c.status, c.authorized) for c in creates] == [
        ("POST", 200, True),
        ("POST", 409, True),
    ]

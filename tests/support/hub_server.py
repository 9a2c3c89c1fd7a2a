"""A small Hugging Face Hub-protocol server for tests and offline examples.

It speaks just enough of the Hub's HTTP API for the real `huggingface_hub` and `datasets`
clients to run unchanged against it: create a repo, repo info, preupload, the LFS batch API
and its PUT upload, commits (NDJSON), refs, commits listing, tags, tree listing, paths-info,
resolve (with HEAD and byte ranges) and validate-yaml. Repos live in memory as real commits:
each commit is a full snapshot of its files and tags point at commits.

    with HubServer(token="hf_test") as server, hub_clients_at(server.url):
        HfApi(endpoint=server.url, token="hf_test").create_repo("me/data", repo_type="dataset")
        ...
        print(server.calls)          # every (method, path) the clients made

`hub_clients_at(url)` points the already imported clients at the server (they read
`HF_ENDPOINT` at import time); a subprocess gets the same through `server.client_env()`.
Uploads use the LFS protocol, not Xet: `hub_clients_at` and `client_env` turn Xet off.
`python -m tests.support.hub_server` serves until interrupted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import unquote

import yaml
from aiohttp import web

from tests.support.threaded import LoopThread

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_EXTENSIONS = (".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".safetensors", ".bin", ".gguf")
LFS_MIN_SIZE = 10 * 1024 * 1024
AUTHORIZED = web.RequestKey("authorized", bool)
GITATTRIBUTES = "".join(
    f"*{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS
).encode()


@dataclass(frozen=True)
class Call:
    """One request the server received."""

    method: str
    path: str
    query: str
    authorized: bool
    """Whether it carried the server's token (always False for a server without one)."""
    status: int


class HubError(Exception):
    """An error answered the way the Hub does: status, `X-Error-Code` and a JSON message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """A file's content in a commit; LFS files are committed as pointers, as on the Hub."""

    data: bytes
    lfs: bool

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        """The git-lfs pointer committed in place of an LFS file's content."""
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {len(self.data)}\n"
        ).encode()

    @cached_property
    def oid(self) -> str:
        """The git blob id, as tree listings show it (of the pointer for an LFS file)."""
        return git_blob_sha1(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid

    def entry(self, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.oid,
            "size": len(self.data),
            "path": path,
        }
        if self.lfs:
            entry["lfs"] = {
                "oid": self.sha256,
                "size": len(self.data),
                "pointerSize": len(self.pointer),
            }
        return entry


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        revision = unquote(revision)
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            name = revision.removeprefix(prefix)
            if name in refs:
                return self.commits[refs[name]]
        if revision in self.commits:
            return self.commits[revision]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def history(self, commit: Commit) -> Iterator[Commit]:
        current: Commit | None = commit
        while current is not None:
            yield current
            current = self.commits[current.parent] if current.parent else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubState:
    """The repos and LFS objects; callers hold `lock` while using them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self._counter = 0

    def repo(self, repo_type: str, repo_id: str, authorized: bool) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authorized):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> bool:
        """Create a repo with its initial commit; False if it exists already."""
        if (repo_type, repo_id) in self.repos:
            return False
        repo = Repo(repo_type, repo_id, private, _now())
        self.repos[(repo_type, repo_id)] = repo
        self.commit(
            repo, "main", "initial commit", "", {".gitattributes": StoredFile(GITATTRIBUTES, False)}
        )
        return True

    def commit(
        self, repo: Repo, branch: str, title: str, message: str, files: dict[str, StoredFile]
    ) -> Commit:
        self._counter += 1
        parent = repo.branches.get(branch)
        date = _now()
        digest = json.dumps(
            [
                parent,
                title,
                message,
                date,
                self._counter,
                sorted((p, f.oid) for p, f in files.items()),
            ]
        )
        commit = Commit(
            hashlib.sha1(digest.encode()).hexdigest(), parent, title, message, date, files
        )
        repo.commits[commit.sha] = commit
        repo.branches[branch] = commit.sha
        return commit


def _tree_entries(
    files: dict[str, StoredFile], folder: str, recursive: bool
) -> list[dict[str, Any]]:
    """Tree listing of `folder` ("" = root): files and sub-folders, like the Hub's."""
    prefix = f"{folder}/" if folder else ""
    entries: dict[str, dict[str, Any]] = {}
    for path, stored in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for depth in range(1, len(parts)):
            sub = prefix + "/".join(parts[:depth])
            if depth == 1 or recursive:
                entries.setdefault(sub, _folder_entry(files, sub))
            if not recursive:
                break
        if len(parts) == 1 or recursive:
            entries[path] = stored.entry(path)
    if folder and not entries:
        raise HubError(404, f"{folder} does not exist", "EntryNotFound")
    return list(entries.values())


def _folder_entry(files: dict[str, StoredFile], folder: str) -> dict[str, Any]:
    inside = sorted(f.oid for path, f in files.items() if path.startswith(folder + "/"))
    oid = hashlib.sha1("".join(inside).encode()).hexdigest()
    return {"type": "directory", "oid": oid, "size": 0, "path": folder}


def _sibling(path: str, stored: StoredFile) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": path, "size": len(stored.data), "blobId": stored.oid}
    if stored.lfs:
        lfs = {
            "sha256": stored.sha256,
            "size": len(stored.data),
            "pointerSize": len(stored.pointer),
        }
        sibling["lfs"] = lfs
    return sibling


def _card_data(files: dict[str, StoredFile]) -> dict[str, Any] | None:
    readme = files.get("README.md")
    if readme is None:
        return None
    text = readme.data.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    with contextlib.suppress(yaml.YAMLError, ValueError):
        data = yaml.safe_load(text.split("---", 2)[1])
        return data if isinstance(data, dict) else None
    return None


class HubApp:
    """The aiohttp application: routes, auth and call recording over a `HubState`."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.state = HubState()
        self.calls: list[Call] = []
        self.base_url = ""
        self.app = web.Application(middlewares=[self._middleware], client_max_size=1 << 40)
        add, get = self.app.router.add_route, self.app.router.add_get  # add_get answers HEAD too
        repo = "/api/{type}/{namespace}/{name}"
        add("POST", "/api/repos/create", self.create_repo)
        add("POST", "/api/validate-yaml", self.validate_yaml)
        get(repo, self.repo_info)
        get(repo + "/revision/{revision}", self.repo_info)
        get(repo + "/refs", self.refs)
        get(repo + "/commits/{revision}", self.list_commits)
        get(repo + "/tree/{revision}", self.tree)
        get(repo + "/tree/{revision}/{path:.+}", self.tree)
        add("POST", repo + "/paths-info/{revision}", self.paths_info)
        add("POST", repo + "/preupload/{revision}", self.preupload)
        add("POST", repo + "/commit/{revision}", self.commit)
        add("POST", repo + "/tag/{revision}", self.create_tag)
        add("PUT", "/lfs-upload/{oid}", self.lfs_upload)
        for prefix in ("/datasets", "/spaces", ""):
            add("POST", prefix + "/{namespace}/{name}.git/info/lfs/objects/batch", self.lfs_batch)
            get(prefix + "/{namespace}/{name}/resolve/{revision}/{path:.+}", self.resolve)

    # -- plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        authorized = self.token is not None and (
            request.headers.get("Authorization") == f"Bearer {self.token}"
        )
        request[AUTHORIZED] = authorized
        status = 500
        try:
            # Read the body first: handlers then never suspend, so holding the (thread) lock
            # that guards the state against `repo_files` readers cannot block the event loop.
            await request.read()
            with self.state.lock:
                response = await handler(request)
            status = response.status
            return response
        except HubError as error:
            status = error.status
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            return web.json_response({"error": error.message}, status=status, headers=headers)
        except web.HTTPException as error:  # no such route or method
            status = error.status
            raise
        finally:
            call = Call(request.method, request.path, request.query_string, authorized, status)
            self.calls.append(call)

    def _require_write(self, request: web.Request) -> None:
        if self.token is not None and not request[AUTHORIZED]:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, request: web.Request) -> Repo:
        kind = request.match_info.get("type")
        if kind is None:  # git/resolve routes: the type is the URL prefix
            first = request.path.split("/")[1]
            kind = first if first in ("datasets", "spaces") else "models"
        if kind not in REPO_TYPES:
            raise HubError(404, f"unknown repo type {kind!r}")
        repo_id = f"{request.match_info['namespace']}/{request.match_info['name']}"
        return self.state.repo(REPO_TYPES[kind], repo_id, request[AUTHORIZED])

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.base_url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # -- repos ---------------------------------------------------------------------------

    async def create_repo(self, request: web.Request) -> web.Response:
        self._require_write(request)
        body = await request.json()
        repo_type = body.get("type") or "model"
        name, organization = body["name"], body.get("organization")
        if not organization:
            raise HubError(400, "give an organization (the test server has no users)")
        repo_id = f"{organization}/{name}"
        private = bool(body.get("private")) or body.get("visibility") == "private"
        created = self.state.create_repo(repo_type, repo_id, private)
        url = f"{self.base_url}/{URL_PREFIXES[repo_type]}{repo_id}"
        if not created:
            return web.json_response(
                {"error": f"You already created this {repo_type} repo", "url": url}, status=409
            )
        return web.json_response({"url": url, "name": repo_id, "id": repo_id})

    async def repo_info(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        commit = repo.resolve(request.match_info.get("revision", "main"))
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "createdAt": repo.created_at,
            "lastModified": commit.date,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "cardData": _card_data(commit.files),
            "siblings": [_sibling(path, stored) for path, stored in sorted(commit.files.items())],
        }
        return web.json_response(info)

    async def refs(self, request: web.Request) -> web.Response:
        repo = self._repo(request)

        def listing(refs: dict[str, str], kind: str) -> list[dict[str, str]]:
            return [
                {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}
                for name, sha in sorted(refs.items())
            ]

        return web.json_response(
            {
                "branches": listing(repo.branches, "heads"),
                "tags": listing(repo.tags, "tags"),
                "converts": [],
                "pullRequests": [],
            }
        )

    async def list_commits(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        head = repo.resolve(request.match_info["revision"])
        return web.json_response(
            [
                {
                    "id": commit.sha,
                    "title": commit.title,
                    "message": commit.message,
                    "date": commit.date,
                    "authors": [{"user": "system" if commit.parent is None else "test-user"}],
                }
                for commit in repo.history(head)
            ]
        )

    async def create_tag(self, request: web.Request) -> web.Response:
        self._require_write(request)
        repo = self._repo(request)
        commit = repo.resolve(request.match_info["revision"])
        tag = (await request.json())["tag"]
        if tag in repo.tags or tag in repo.branches:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.sha
        return web.json_response({})

    # -- reading files -------------------------------------------------------------------

    async def tree(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        commit = repo.resolve(request.match_info["revision"])
        recursive = request.query.get("recursive", "false").lower() in ("1", "true")
        folder = request.match_info.get("path", "").strip("/")
        return web.json_response(_tree_entries(commit.files, folder, recursive))

    async def paths_info(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        commit = repo.resolve(request.match_info["revision"])
        if request.content_type == "application/json":
            paths = (await request.json()).get("paths", [])
        else:
            paths = (await request.post()).getall("paths", [])
        entries = []
        for path in paths:
            path = str(path).strip("/")
            if path in commit.files:
                entries.append(commit.files[path].entry(path))
            elif any(name.startswith(path + "/") for name in commit.files):
                entries.append(_folder_entry(commit.files, path))
        return web.json_response(entries)

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        repo = self._repo(request)
        commit = repo.resolve(request.match_info["revision"])
        path = request.match_info["path"]
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {
            "ETag": f'"{stored.etag}"',
            "X-Repo-Commit": commit.sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if stored.lfs:
            headers["X-Linked-Etag"] = f'"{stored.sha256}"'
            headers["X-Linked-Size"] = str(len(stored.data))
        body, status = stored.data, 200
        if "Range" in request.headers:
            start, end = _parse_range(request.headers["Range"], len(stored.data))
            body, status = stored.data[start : end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(stored.data)}"
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(status=status, headers=headers)
        return web.Response(body=body, status=status, headers=headers)

    # -- writing -------------------------------------------------------------------------

    async def validate_yaml(self, request: web.Request) -> web.Response:
        content = (await request.json()).get("content", "")
        if content.startswith("---"):
            try:
                metadata = yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as error:
                return web.json_response({"errors": [{"message": str(error)}]}, status=400)
            if metadata is not None and not isinstance(metadata, dict):
                message = "the YAML metadata must be a mapping"
                return web.json_response({"errors": [{"message": message}]}, status=400)
        return web.json_response({"errors": [], "warnings": []})

    async def preupload(self, request: web.Request) -> web.Response:
        self._require_write(request)
        repo = self._repo(request)
        commit = repo.resolve(request.match_info["revision"])
        files = []
        for item in (await request.json())["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = item["path"].endswith(LFS_EXTENSIONS) or item["size"] >= LFS_MIN_SIZE
            lfs = lfs or b"\0" in sample
            existing = commit.files.get(item["path"])
            remote_oid = None
            if existing is not None:
                remote_oid = existing.sha256 if existing.lfs else existing.oid
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": remote_oid,
                }
            )
        return web.json_response({"files": files, "commitOid": commit.sha})

    async def lfs_batch(self, request: web.Request) -> web.Response:
        self._require_write(request)
        self._repo(request)
        body = await request.json()
        objects = []
        for obj in body["objects"]:
            answer: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.state.lfs_objects:
                href = f"{self.base_url}/lfs-upload/{obj['oid']}?size={obj['size']}"
                answer["actions"] = {"upload": {"href": href, "expires_in": 3600}}
            objects.append(answer)
        return web.json_response(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            content_type="application/vnd.git-lfs+json",
        )

    async def lfs_upload(self, request: web.Request) -> web.Response:
        oid = request.match_info["oid"]
        data = await request.read()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not match sha256 {oid}")
        self.state.lfs_objects[oid] = data
        return web.Response(status=200)

    async def commit(self, request: web.Request) -> web.Response:
        self._require_write(request)
        repo = self._repo(request)
        branch = unquote(request.match_info["revision"]).removeprefix("refs/heads/")
        if request.query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the test server")
        if branch not in repo.branches:
            raise HubError(400, f"can only commit to a branch; {branch!r} is not one")
        lines = [json.loads(line) for line in (await request.read()).splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the first NDJSON line must be the commit header")
        header = lines[0]["value"]
        head = repo.commits[repo.branches[branch]]
        parent = header.get("parentCommit")
        if parent and not head.sha.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"].strip("/")
            if key == "file":
                files[path] = StoredFile(base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                if value["oid"] not in self.state.lfs_objects:
                    raise HubError(422, f"LFS object {value['oid']} of {path} was never uploaded")
                files[path] = StoredFile(self.state.lfs_objects[value["oid"]], True)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                files = {p: f for p, f in files.items() if not p.startswith(path + "/")}
            else:
                raise HubError(400, f"unsupported commit operation {key!r}")
        commit = self.state.commit(
            repo, branch, header["summary"], header.get("description", ""), files
        )
        return web.json_response(
            {
                "success": True,
                "commitOid": commit.sha,
                "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}",
                "hookOutput": "",
            }
        )


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """First range of a `bytes=` header as inclusive (start, end)."""
    unit, _, spec = header.partition("=")
    first = spec.split(",")[0].strip()
    start_text, _, end_text = first.partition("-")
    if unit.strip() != "bytes" or not (start_text or end_text):
        raise HubError(416, f"unsupported Range header {header!r}")
    if not start_text:
        start, end = max(0, size - int(end_text)), size - 1
    else:
        start = int(start_text)
        end = min(int(end_text), size - 1) if end_text else size - 1
    if start >= size or start > end:
        raise HubError(416, f"range {header!r} not satisfiable for {size} bytes")
    return start, end


class HubServer:
    """Serve a `HubApp` on 127.0.0.1 from a background thread; a context manager."""

    def __init__(self, token: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._hub = HubApp(token)
        self._host, self._port = host, port
        self._serving = LoopThread("hub-test-server")
        self.url = ""

    @property
    def calls(self) -> list[Call]:
        """Every request received so far, in order."""
        return self._hub.calls

    @property
    def state(self) -> HubState:
        return self._hub.state

    def repo_files(
        self, repo_id: str, revision: str = "main", repo_type: str = "dataset"
    ) -> dict[str, bytes]:
        """The files of a repo at a revision (branch, tag or sha), for tests to inspect."""
        with self.state.lock:
            commit = self.state.repo(repo_type, repo_id, authorized=True).resolve(revision)
            return {path: stored.data for path, stored in commit.files.items()}

    def client_env(self) -> dict[str, str]:
        """Environment variables that send a fresh Python process's Hub clients here."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0"}

    def start(self) -> HubServer:
        sock = socket.create_server((self._host, self._port))
        self.url = f"http://{self._host}:{sock.getsockname()[1]}"
        self._hub.base_url = self.url

        async def setup() -> Any:
            runner = web.AppRunner(self._hub.app, access_log=None)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            return runner.cleanup

        self._serving.start(setup)
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def hub_clients_at(url: str) -> Iterator[None]:
    """Point the imported `huggingface_hub` and `datasets` clients at `url`, then restore them.

    Both read `HF_ENDPOINT` and `HF_HUB_OFFLINE` into module constants at import time, so a
    process that imported them already is redirected here; Xet uploads are turned off too.
    """
    import datasets.config
    import huggingface_hub.constants as hub_constants

    url = url.rstrip("/")
    patches: list[tuple[Any, str, Any]] = [
        (hub_constants, "ENDPOINT", url),
        (
            hub_constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            url + "/{repo_id}/resolve/{revision}/{filename}",
        ),
        (hub_constants, "HF_HUB_OFFLINE", False),
        (hub_constants, "HF_HUB_DISABLE_XET", True),
        (datasets.config, "HF_ENDPOINT", url),
        (
            datasets.config,
            "HUB_DATASETS_URL",
            url + "/datasets/{repo_id}/resolve/{revision}/{path}",
        ),
        (datasets.config, "HF_HUB_OFFLINE", False),
        (datasets.config, "HF_DATASETS_OFFLINE", False),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    try:
        for module, name, value in patches:
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a Hub test server until Ctrl-C or SIGTERM.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="require this bearer token for writes")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with HubServer(token=args.token, port=args.port) as server:
        print(f"HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()

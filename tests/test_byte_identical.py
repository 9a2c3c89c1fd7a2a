"""The simulated-arena pipeline (mine .. select, as `test_pipeline_e2e` runs it) publishes the
same datasets and cards as commit 909bde2 did, before the builders / standings restructuring.

`tests/fixtures/pipeline_hashes.json` holds, per dataset, sha256 digests made at 909bde2:

- `content`: the rows and features in a canonical form (features as `Features.to_dict()`,
  rows as sorted-key JSON, floats by `repr`), which no library upgrade changes;
- `files`: the bytes of every published file (parquet shards, figures), which also depend on
  the versions of pyarrow / datasets / matplotlib that wrote them (recorded as `environment`);
- `card`: README.md with what legitimately varies normalised out: the creation time, phase
  times, the run's folder (and the form of a local load snippet, now portable), and for
  `votes` its fingerprint (judge's fingerprint no longer holds the `select` section, the one
  intended change) and its config's `select` section.

Since 909bde2 the votes and sft_final cards gained sections on purpose (issue 19's figures
and lineage sections, sft_final's `preference` config of DPO pairs), and the win-rate
heatmap's title was fixed. Every card is still compared with 909bde2 whole, less exactly those
additions: `without_additions` drops the `## ` sections named in `ADDED_SECTIONS` (each with
its figure link and table) and the `configs:` entries named in `ADDED_CONFIGS`, nothing else.
What it drops, and the published files that are new or listed in `CHANGED_SINCE_909BDE2`,
are checked against a second fixture, `tests/fixtures/pipeline_additions.json`:

- `sections`: sha256 of each dropped section / config entry (normalised as above);
- `files`: sha256 of each published file that 909bde2 did not have or that changed on purpose.

The content digests are compared always; the file and card digests where the environment
matches the recorded one (otherwise they are skipped, saying which versions differ). A change
meant to alter a card or a figure fails the last tests: say so in its commit; a new section
goes into `ADDED_SECTIONS` and the additions fixture is written again (below). A change to
anything 909bde2 had must not be recorded that way: it goes into `CHANGED_SINCE_909BDE2` with
its reason, or the 909bde2 fixture stays as it is and the change is a regression.

The 909bde2 fixture was produced at 909bde2 by copying this file into a worktree of that
commit (the additions are absent there, so `without_additions` drops nothing):

    git worktree add /tmp/base 909bde2 && cp tests/test_byte_identical.py /tmp/base/tests/
    cd /tmp/base && PYTHONPATH=src:. python tests/test_byte_identical.py --write \\
        /work/main/tests/fixtures/pipeline_hashes.json

The additions fixture is produced in this checkout, after checking the added sections by eye:

    .venv/bin/python tests/test_byte_identical.py --write-new tests/fixtures/pipeline_additions.json
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from tests.support.sim_battles import BattleSim
from tests.support.sim_instructions import sim_arena
from warriorcoder.hub import LocalHubStore
from warriorcoder.runner import run_phase

try:
    from warriorcoder.hub import open_store
except ImportError:  # 909bde2
    from warriorcoder.hub import HubStore

    open_store = HubStore.from_config  # type: ignore[assignment]

try:
    from warriorcoder.builders import PHASES, get_phase
except ImportError:  # 909bde2, where the fixture was made, kept the registry in `phases`
    from warriorcoder.phases import PHASES, get_phase  # type: ignore[no-redef]

FIXTURE = Path(__file__).parent / "fixtures" / "pipeline_hashes.json"
ADDITIONS = Path(__file__).parent / "fixtures" / "pipeline_additions.json"
PRODUCED_BY = ("tests/test_byte_identical.py --write, run in a worktree of commit 909bde2 (see "
               "that file's docstring): digests of the simulated-arena pipeline's datasets")
PRODUCED_NEW = ("tests/test_byte_identical.py --write-new, run in the checkout: digests of what "
                "the cards and files gained since 909bde2 (see that file's docstring)")
_FIGURES = ("Ratings and ranks", "Battle counts", "Judges' first-shown share")
ADDED_SECTIONS: dict[str, tuple[str, ...]] = {
    "votes": _FIGURES,  # issue 19: the arena's figures
    "sft_final": (*_FIGURES, "Preference pairs (DPO)",  # issue 19: figures, TRL pairs,
                  "Funnel: mined_raw to sft_final", "Cost per phase"),  # the lineage's figures
}
"""The `## ` sections each card gained since 909bde2 (with `judge.execution` off, as here)."""
ADDED_CONFIGS: dict[str, tuple[str, ...]] = {"sft_final": ("preference",)}
"""The `configs:` entries each card gained since 909bde2 (sft_final's DPO pairs)."""
CHANGED_SINCE_909BDE2: dict[str, tuple[str, ...]] = {
    name: ("figures/win_rate.png",) for name in ("votes", "sft_final")
}
"""Files 909bde2 published that changed on purpose: the heatmap's title, cut off at its right
edge at 909bde2, is on two lines (issue 19)."""
NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")
STRENGTHS = dict(zip(NAMES, (0.9, 0.7, 0.5, 0.3, 0.1), strict=True))
ENVIRONMENT = ("datasets", "pyarrow", "huggingface-hub", "matplotlib", "numpy", "pyyaml",
               "jinja2")
"""Packages whose versions the file and card bytes depend on."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_pipeline(root: Path) -> LocalHubStore:
    """Mine .. select against 5 simulated experts (test_pipeline_e2e's straight run)."""
    sim = BattleSim(STRENGTHS, position_bias={"gamma": 0.8}, invalid_rate=0.1)
    with sim_arena(root, NAMES, fallback=sim.responder) as arena:
        config = arena.config
        config.compress.size = 20
        config.battle.max_new_tokens = 40
        config.judge.max_new_tokens = 200
        config.select.elo_permutations = 10
        config.select.bootstrap_rounds = 20
        store = open_store(config.hub)
        for phase in PHASES:
            run_phase(phase, config, store=store)
    assert isinstance(store, LocalHubStore)
    return store


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def content_digest(store: LocalHubStore, dataset: str, version: str) -> str:
    """sha256 of a version's features and rows in a library-independent form."""
    rows = store.load(dataset, version)
    digest = hashlib.sha256(json.dumps(rows.features.to_dict(), sort_keys=True).encode())
    for row in rows:
        digest.update(json.dumps(_canonical(row), sort_keys=True).encode() + b"\n")
    return digest.hexdigest()


_VOLATILE = (
    (re.compile(r"created_at: \S+"), "created_at: <time>"),
    (re.compile(r"Created: \S+"), "Created: <time>"),
    (re.compile(r"(\n      seconds: )[0-9.]+"), r"\1<seconds>"),
    (re.compile(r"Phase time: [0-9.]+ s\."), "Phase time: <seconds> s."),
    # the load snippet of a local version: an absolute path at 909bde2, relative to the
    # folder holding `hub/` (with a comment saying so) since the cards are portable
    (re.compile(r"(# a local version[^\n]*\n)?ds = load_dataset\('(<root>/)?hub/"),
     "ds = load_dataset('hub/"),
    # the shards' content token: the file digests cover it
    (re.compile(r"(train-[*0-9]+(?:-of-[0-9]+)?-)[0-9a-f]{12}(\.parquet)"), r"\1<token>\2"),
)
_VOTES_ONLY = (
    (re.compile(r"fingerprint: [0-9a-f]{64}"), "fingerprint: <fingerprint>"),
    (re.compile(r"\n    select:\n(      .*\n)+"), "\n"),  # the card's metadata
    (re.compile(r"\nselect:\n(  .*\n)+"), "\n"),  # the config shown in its body
)


def without_additions(text: str, dataset: str) -> tuple[str, dict[str, str]]:
    """The card less the sections and `configs:` entries it gained since 909bde2, and what was
    dropped (`section: <title>` / `config: <name>` -> its text)."""
    wanted = ADDED_SECTIONS.get(dataset, ())
    kept, dropped = [], {}
    for part in re.split(r"(?m)^(?=## )", text):  # a section runs to the next `## ` heading
        title = part.split("\n", 1)[0].removeprefix("## ") if part.startswith("## ") else None
        if title in wanted:
            dropped[f"section: {title}"] = part
        else:
            kept.append(part)
    text = "".join(kept)
    for name in ADDED_CONFIGS.get(dataset, ()):
        entry = re.search(rf"(?m)^- config_name: {re.escape(name)}\n(?:  .*\n)+", text)
        if entry:
            dropped[f"config: {name}"] = entry[0]
            text = text[:entry.start()] + text[entry.end():]
    return text, dropped


def normalised_card(text: str, dataset: str, root: Path) -> str:
    """The card without its times and the run's folder (and, for `votes`, its fingerprint
    and `select` config, which judge no longer depends on)."""
    text = text.replace(str(root), "<root>")
    for pattern, replacement in _VOLATILE + (_VOTES_ONLY if dataset == "votes" else ()):
        text = pattern.sub(replacement, text)
    return text


def digests(store: LocalHubStore) -> dict[str, Any]:
    """Per dataset of the pipeline: content, file and card digests of its latest version."""
    result: dict[str, Any] = {}
    for phase in PHASES:
        dataset = get_phase(phase).dataset
        ref = store.latest(dataset)
        assert ref is not None, dataset
        folder = Path(ref.location)
        files = {path.relative_to(folder).as_posix(): _sha(path.read_bytes())
                 for path in sorted(folder.rglob("*"))
                 if path.is_file() and path.name != "README.md"}
        card, added = without_additions(normalised_card(
            (folder / "README.md").read_text(encoding="utf-8"), dataset,
            Path(store.root).parent), dataset)
        result[dataset] = {"version": ref.version,
                           "content": content_digest(store, dataset, ref.version),
                           "files": files, "card": _sha(card.encode()),
                           "sections": {key: _sha(text.encode()) for key, text in added.items()}}
    return result


def additions(published: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """Per dataset: the digests of the dropped sections, and of the files that 909bde2 did
    not publish or that are in `CHANGED_SINCE_909BDE2`."""
    result = {}
    for name, entry in published.items():
        before = recorded["datasets"][name]["files"]
        files = {path: digest for path, digest in entry["files"].items()
                 if path not in before or path in CHANGED_SINCE_909BDE2.get(name, ())}
        result[name] = {"files": files, "sections": entry["sections"]}
    return result


def environment() -> dict[str, str]:
    return {name: version(name) for name in ENVIRONMENT}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    yield digests(run_pipeline(tmp_path_factory.mktemp("pipeline")))


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def recorded_new() -> dict[str, Any]:
    return json.loads(ADDITIONS.read_text())


def _same_environment(recorded: dict[str, Any]) -> None:
    here = environment()
    differ = {k: (v, here.get(k)) for k, v in recorded["environment"].items() if here.get(k) != v}
    if differ:
        pytest.skip(f"file bytes depend on library versions; recorded with {differ} "
                    "(recorded, installed); the content digests are still compared")


@pytest.mark.slow
def test_rows_and_features_are_those_of_909bde2(published: dict[str, Any],
                                                recorded: dict[str, Any]) -> None:
    got = {name: entry["content"] for name, entry in published.items()}
    assert got == {name: entry["content"] for name, entry in recorded["datasets"].items()}


def _files(entry: dict[str, Any], data: bool) -> dict[str, str]:
    return {path: digest for path, digest in entry["files"].items()
            if path.startswith("data/") == data}


@pytest.mark.slow
def test_parquet_files_are_those_of_909bde2(published: dict[str, Any],
                                           recorded: dict[str, Any]) -> None:
    _same_environment(recorded)
    for name, entry in recorded["datasets"].items():
        assert published[name]["version"] == entry["version"], name
        assert _files(published[name], data=True) == _files(entry, data=True), name


@pytest.mark.slow
def test_cards_less_their_additions_and_figures_are_those_of_909bde2(
        published: dict[str, Any], recorded: dict[str, Any]) -> None:
    _same_environment(recorded)
    for name, entry in recorded["datasets"].items():
        changed = CHANGED_SINCE_909BDE2.get(name, ())
        before = {p: d for p, d in _files(entry, data=False).items() if p not in changed}
        now = _files(published[name], data=False)
        assert {p: now.get(p) for p in before} == before, name
        assert set(changed) <= set(now), name
        assert published[name]["card"] == entry["card"], name


@pytest.mark.slow
def test_the_sections_and_files_added_since_909bde2_are_those_recorded(
        published: dict[str, Any], recorded: dict[str, Any],
        recorded_new: dict[str, Any]) -> None:
    _same_environment(recorded_new)
    for name, entry in published.items():  # each section listed is there, once
        assert len(entry["sections"]) == (len(ADDED_SECTIONS.get(name, ()))
                                          + len(ADDED_CONFIGS.get(name, ()))), name
    assert additions(published, recorded) == recorded_new["datasets"]


if __name__ == "__main__":  # python tests/test_byte_identical.py --write[-new] FIXTURE
    import tempfile

    if sys.argv[1:2] not in (["--write"], ["--write-new"]) or len(sys.argv) != 3:
        sys.exit("usage: python tests/test_byte_identical.py --write|--write-new FIXTURE")
    with tempfile.TemporaryDirectory() as tmp:
        found = digests(run_pipeline(Path(tmp)))
    if sys.argv[1] == "--write":
        data = {"produced_by": PRODUCED_BY, "environment": environment(), "datasets": {
            name: {k: v for k, v in entry.items() if k != "sections"}
            for name, entry in found.items()}}
    else:
        data = {"produced_by": PRODUCED_NEW, "environment": environment(),
                "datasets": additions(found, json.loads(FIXTURE.read_text()))}
    Path(sys.argv[2]).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

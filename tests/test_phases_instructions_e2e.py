"""The instruction phases end to end through the CLI: mine -> filter -> compress against the
TGI test server with three simulated experts, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import datasets
import yaml
from click.testing import CliRunner
from huggingface_hub import DatasetCard

from tests.support.sim_instructions import sim_arena
from warriorcoder.builders import get_phase
from warriorcoder.cli import main
from warriorcoder.hub import open_store

PHASES = ("mine", "filter", "compress")


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_mine_filter_compress_publish_three_linked_versions(tmp_path: Path) -> None:
    with sim_arena(tmp_path, compress_size=10) as arena:
        config_path = tmp_path / "arena.yaml"
        config_path.write_text(yaml.safe_dump(arena.config.to_yaml_dict(), sort_keys=False))
        output = _invoke("run", "-c", str(config_path), "--until", "compress")
        store = open_store(arena.config.hub)
        refs = {phase: store.latest(get_phase(phase).dataset) for phase in PHASES}
        assert all(f"{phase}: published {refs[phase].spec()}" in output for phase in PHASES)

        # Each version loads with plain `datasets` and its card names its parent version.
        rows, lineage = {}, {}
        for phase, ref in refs.items():
            cache = tmp_path / "cache" / phase
            rows[phase] = datasets.load_dataset(ref.location, split="train", cache_dir=str(cache))
            card = DatasetCard.load(Path(ref.location) / "README.md")
            lineage[phase] = card.data.to_dict()["warriorcoder"]
        assert lineage["mine"]["parent"] is None
        assert lineage["filter"]["parent"]["repo_id"] == refs["mine"].repo_id
        assert lineage["filter"]["parent"]["version"] == refs["mine"].version
        assert lineage["compress"]["parent"]["repo_id"] == refs["filter"].repo_id
        assert lineage["compress"]["parent"]["version"] == refs["filter"].version

        p = arena.sim.planted
        mined = p.requests - p.truncated - p.empty
        filtered = (mined - p.exact_duplicates - p.near_duplicates - p.contaminated - p.unrated
                    - p.below_threshold)
        assert len(rows["mine"]) == mined
        assert len(rows["filter"]) == filtered
        assert len(rows["compress"]) == min(10, filtered)
        assert set(rows["compress"]["id"]) <= set(rows["filter"]["id"]) <= set(rows["mine"]["id"])

        # `status` shows the chain; running everything again pays for no call.
        status = _invoke("status", "-c", str(config_path))
        tree = status.split("\nLineage", 1)[1].splitlines()
        column = {phase: next(line.index(refs[phase].spec()) for line in tree
                              if refs[phase].spec() in line) for phase in PHASES}
        rows_of = {phase: next(i for i, line in enumerate(tree) if refs[phase].spec() in line)
                   for phase in PHASES}
        # each version printed below, and indented under, the one it was built from
        assert rows_of["mine"] < rows_of["filter"] < rows_of["compress"], status
        assert column["mine"] < column["filter"] < column["compress"], status
        served = arena.served()
        output = _invoke("run", "-c", str(config_path), "--until", "compress")
        assert arena.served() == served
        assert all(f"{phase}: reused {refs[phase].spec()}" in output for phase in PHASES)
        assert all(store.latest(get_phase(p).dataset) == refs[p] for p in PHASES)
        forced = _invoke("run", "-c", str(config_path), "--until", "compress", "--force")
        assert arena.served() == served  # a forced rebuild is answered by the journal
        again = store.load("compressed", store.latest("compressed").version)
        assert store.latest("compressed").version != refs["compress"].version
        assert again["id"] == rows["compress"]["id"] and "published" in forced

        # A version rebuilt from the config and parent its card recorded has the same rows.
        output = _invoke("filter", "-c", str(config_path), "--from-card", refs["filter"].spec())
        rebuilt = store.latest("filtered")
        assert rebuilt.version != refs["filter"].version and rebuilt.spec() in output
        assert store.load("filtered", rebuilt.version).to_list() == rows["filter"].to_list()
        assert arena.served() == served

"""`warriorcoder report`: one self-contained HTML page for a lineage, built from a hub the
simulated pipeline filled (every expert answer carrying hostile HTML), plus a model and an
evals version published from it. Rendered in headless chromium (skipped where there is none):
it loads with no console error and no request beyond the file itself, every figure is drawn,
and the hostile text shows as text."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import datasets
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from tests.support.chromium import Chromium, find_chromium
from tests.support.sim_lineage import sim_lineage
from warriorcoder.cli import main
from warriorcoder.dataset_cards import render_png
from warriorcoder.hub import EVALS, MODEL, HubStore, VersionRef, open_store

HOSTILE = ('\n<script>console.error("xss")</script><img src="x" '
           'onerror="console.error(\'xss\')"></pre><b>bold</b>')
SCORES = {"humaneval": {"pass@1": 0.375, "problems": 8, "samples": 8, "correct": 3},
          "humaneval+": {"pass@1": 0.25, "problems": 8, "samples": 8, "correct": 2}}


def _card(block: dict, body: str) -> str:
    return f"---\n{yaml.safe_dump({'warriorcoder': block}, sort_keys=False)}---\n{body}\n"


def _publish_model_and_evals(store: HubStore, root: Path) -> None:
    """A model version trained on sft_final v1 (with its loss figure) and an evals version of
    that model, their cards naming their parents as warriorcoder's cards do."""
    sft = store.latest("sft_final")
    folder = root / "checkpoint"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "loss_curve.png").write_bytes(render_png(lambda ax: ax.plot([1, 2, 3], [3, 2, 1])))
    (folder / "README.md").write_text(_card(
        {"phase": "train", "dataset": MODEL,
         "parent": {"repo_id": sft.repo_id, "version": sft.version, "revision": sft.revision}},
        "# model\n\n![training loss](loss_curve.png)"))
    model = store.publish_folder(MODEL, folder)
    rows = datasets.Dataset.from_list([{"task_id": "HumanEval/0", "status": "pass"}])
    block = {"phase": "evaluate", "dataset": EVALS, "scores": SCORES,
             "parent": {"repo_id": model.repo_id, "version": model.version,
                        "revision": model.revision}}
    store.publish(EVALS, rows, lambda ref: _card(block, "# evals"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HubStore]:
    root = tmp_path_factory.mktemp("report")
    config, store = sim_lineage(root, answer_suffix=HOSTILE)
    _publish_model_and_evals(store, root)
    path = root / "arena.yaml"
    path.write_text(yaml.safe_dump(config.to_yaml_dict(), sort_keys=False))
    return path, store


@pytest.fixture(scope="module")
def report(hub: tuple[Path, HubStore], tmp_path_factory: pytest.TempPathFactory) -> Path:
    config_path, _ = hub
    output = tmp_path_factory.mktemp("out") / "report.html"
    result = CliRunner().invoke(main, ["report", "-c", str(config_path), "--dataset",
                                       "sft_final@v1", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert f"report: {output}" in result.output
    return output


def test_the_page_is_self_contained_and_shows_the_lineage(report: Path,
                                                          hub: tuple[Path, HubStore]) -> None:
    _, store = hub
    page = report.read_text()
    assert "<script" not in page and "<link" not in page and "@import" not in page
    tags = _tags(page)
    assert not [(tag, attrs) for tag, attrs in tags if tag in ("script", "link", "iframe", "b")
                or any(k in ("src", "href") and not (v or "").startswith("data:image/png;")
                       for k, v in attrs)]  # nothing to fetch, no element from model text
    assert sum(tag == "img" for tag, _ in tags) == page.count("<img ")
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    pngs = [Image.open(io.BytesIO(base64.b64decode(data))) for data in images]
    assert all(png.width > 100 and png.height > 100 for png in pngs)
    titles = re.findall(r'<img src="[^"]+" alt="([^"]+)"', page)
    # the funnel and cost, the cards' figures (each once), the model's loss, the evals' pass@1
    for title in ("Funnel", "Cost per phase", "Difficulty distribution", "Coverage radius curve",
                  "Win rates", "Ratings and ranks", "Battle counts",
                  "First-shown share per judge", "training loss", "pass@1 per benchmark"):
        assert titles.count(title) == 1, (title, titles)
    for name in ("mined_raw", "filtered", "compressed", "battles", "votes", "sft_final"):
        ref = store.latest(name)
        assert f"<td>{ref.repo_id}</td><td>{ref.version}</td>" in page
    model, evals = store.latest(MODEL), store.latest(EVALS)
    assert f"<td>{model.repo_id}</td><td>{model.version}</td>" in page
    assert "humaneval pass@1 0.375, humaneval+ pass@1 0.250" in page
    votes = store.lineage(store.latest("votes"))["cost"]
    assert (f"<td>votes</td><td class=\"num\">{votes['planned']['calls']}</td>"
            f"<td class=\"num\">{votes['actual']['calls']}</td>") in page
    assert evals.repo_id in page


def test_battles_are_shown_whole_and_model_text_is_escaped(report: Path,
                                                           hub: tuple[Path, HubStore]) -> None:
    _, store = hub
    page = report.read_text()
    battles = re.findall(r"<h3>Battle ([0-9a-f]+)</h3>", page)
    assert len(battles) == 3
    votes = store.load("votes", store.latest("votes").version).to_pandas()
    sft = store.load("sft_final", store.latest("sft_final").version).to_pandas()
    for battle_id in battles:
        rows = votes[votes.battle_id == battle_id]
        section = page.split(f"<h3>Battle {battle_id}</h3>")[1].split("<h3>Battle ")[0]
        first = rows.iloc[0]
        for text in (first.instruction, first.response_attacker, first.response_defender):
            assert f"<pre>{escape(text)}</pre>" in section
        for judge in rows.judge:
            assert f"<td>{judge}</td>" in section
        assert section.count("<tr><td>") == len(rows)  # one table row per vote
        target = sft[sft.id == first.instruction_id].iloc[0]
        assert f"Target: {target.winner} ({target.winner_role}" in section
    winners = {votes[votes.battle_id == b].winner.mode()[0] for b in battles}
    assert len(winners) >= 2  # the kinds of outcome the arena saw, not three alike
    assert HOSTILE not in page and escape(HOSTILE).strip() in page


def _tags(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element of the page, as the HTML parser sees it."""
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collect().feed(page)
    return found


def escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_a_bad_dataset_is_one_line_naming_what_to_give(hub: tuple[Path, HubStore],
                                                       tmp_path: Path) -> None:
    config_path, _ = hub
    for spec, expected in [("nothing@v1", "not a dataset of this arena; give one of mined_raw"),
                           ("sft_final@v9", "has no version v9"),
                           ("sft_final", "is not `<repo_id>@vN`")]:
        result = CliRunner().invoke(main, ["report", "-c", str(config_path), "--dataset", spec,
                                           "--output", str(tmp_path / "r.html")])
        assert result.exit_code == 1 and expected in result.output, result.output
        assert result.output.count("\n") == 1 and not (tmp_path / "r.html").exists()


@pytest.mark.skipif(find_chromium() is None,
                    reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does)")
def test_chromium_renders_the_report_with_every_figure_and_no_error(
        report: Path, hub: tuple[Path, HubStore]) -> None:
    with Chromium(width=1280, height=1600) as browser:
        page = browser.open(report)
        images = page.evaluate("Array.from(document.images).map(i => "
                               "({alt: i.alt, done: i.complete, w: i.naturalWidth, "
                               "h: i.naturalHeight, shown: i.getBoundingClientRect().width}))")
        text = page.evaluate("document.body.innerText")
        title = page.evaluate("document.title")
        battles = page.evaluate("document.querySelectorAll('section.battle').length")
        hostile = page.evaluate("document.querySelectorAll('b, script, img[src=\"x\"]').length")
        shot = page.screenshot(report.with_suffix(".png"))
        full = page.screenshot(report.with_name("report-full.png"), full_page=True)
        errors, requests = page.errors, page.requests
    assert errors == [], errors
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert len(images) == report.read_text().count("<img ") >= 10
    assert all(i["done"] and i["w"] > 100 and i["h"] > 100 and i["shown"] > 0
               for i in images), images
    assert title == f"WarriorCoder report: {hub[1].latest('sft_final').spec()}"
    assert battles == 3 and hostile == 0  # no element from the answers' HTML
    assert '<script>console.error("xss")</script>' in text
    for png in (shot, full):
        image = Image.open(png).convert("L")
        assert image.width == 1280 and image.getextrema()[0] < 64  # drawn, not blank
    assert Image.open(full).height > 3000


def test_the_report_reads_a_lineage_published_on_the_hub_backend(
        hub: tuple[Path, HubStore], report: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same lineage published on the Hub-protocol test server (rows, cards, and the
    figures uploaded with each version) gives a report with the same figures."""
    import huggingface_hub.constants as hub_constants

    from tests.support.hub_server import HubServer, hub_clients_at
    from warriorcoder.builders import PHASES, get_phase
    from warriorcoder.config import HubConfig
    from warriorcoder.report import build_report

    _, local = hub
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    with HubServer() as server, hub_clients_at(server.url):
        remote = open_store(HubConfig(backend="hf", endpoint=server.url,
                                                namespace="sim", prefix="warriorcoder"))
        for name in (get_phase(p).dataset for p in PHASES):
            ref = local.latest(name)
            folder = Path(ref.location)
            figures = {p.relative_to(folder).as_posix(): p.read_bytes()
                       for p in sorted((folder / "figures").glob("*.png"))}
            card = local.read_card(name, ref.version)

            def render(target: VersionRef, text: str = card) -> str:  # its own shards
                return re.sub(r"data/train-\*-[0-9a-f]{12}\.parquet", target.data_files, text)

            published = remote.publish(name, local.load(name, ref.version), render,
                                       files=figures)
            assert set(figures) <= set(server.repo_files(published.repo_id, published.version))
        page = build_report(remote, "sim/warriorcoder-sft_final@v1")
    images = set(re.findall(r'<img src="(data:[^"]+)"', page))
    local_images = set(re.findall(r'<img src="(data:[^"]+)"', report.read_text()))
    assert len(images) >= 8 and images <= local_images  # no model / evals published there
    assert len(re.findall(r"<h3>Battle ", page)) == 3

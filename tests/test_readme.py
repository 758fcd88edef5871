"""The README stays a five-minute read that tells the truth: at most 200 lines, links that
resolve, the Quick-start commands CI runs, a graph example the loader accepts, and every figure
linked to the doc that holds it (and that doc holding the same number)."""
from __future__ import annotations

import pathlib
import re
import shlex
import tomllib

import pytest

from rram_lsm.launch.cli import build_parser
from rram_lsm.launch.graph import load_graph

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MEASUREMENT_DOCS = ("docs/results.md", "docs/performance.md", "docs/reliability.md", "docs/energy.md")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
# A figure: a number with a unit, or a real-time factor.
FIGURE = re.compile(r"\d\s*(?:%|µs|ms\b|MB\b|GB\b|×|M events)|real-time factor \d|RTF \d")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of one `## title` section of the README."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme(), re.M | re.S)
    assert m, f"README.md has no '## {title}' section"
    return m.group(1)


def prose_lines(text: str) -> list[str]:
    """Lines outside fenced code blocks."""
    return FENCE.sub("", text).splitlines()


def quick_start_commands() -> list[str]:
    blocks = [body for lang, body in FENCE.findall(section("Quick start")) if lang == "bash"]
    assert len(blocks) == 1, "the Quick start holds one bash block"
    return [line.strip() for line in blocks[0].splitlines() if line.strip() and not line.lstrip().startswith("#")]


def top_level_steps(command: str) -> list[str]:
    """``command`` split at the ``&&`` outside parentheses (a subshell's own ``&&`` stays)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(command):
        depth += (c == "(") - (c == ")")
        if depth == 0 and command.startswith("&&", i):
            parts.append(command[start:i])
            start = i + 2
    return parts + [command[start:]]


def steps(command: str) -> list[list[str]]:
    """A `a && b && c` line as its words per step; pip's -q/--quiet only quietens its output,
    so it is left out of the comparison (pytest's -q is compared)."""
    out = []
    for step in top_level_steps(command):
        words = shlex.split(step)
        if words[:2] == [".venv/bin/pip", "install"]:
            words = [w for w in words if w not in ("-q", "--quiet")]
        out.append(words)
    return out


def test_readme_is_at_most_200_lines():
    n = len(readme().splitlines())
    assert n <= 200, f"README.md has {n} lines; move detail to docs/"


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(doc: pathlib.Path) -> list[str]:
    """Relative links of ``doc`` whose file, or whose #anchor in a Markdown file, is missing."""
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # web links
        path, _, anchor = target.partition("#")
        file = doc.parent / path if path else doc
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", FENCE.sub("", file.read_text(encoding="utf-8")), re.M)
            if anchor not in {slug(h) for h in headings}:
                broken.append(target)
    return broken


def test_every_relative_link_points_to_an_existing_file():
    assert broken_links(README) == [], "README.md links to files or headings that do not exist"


@pytest.mark.parametrize("doc", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_links_in_docs_resolve(doc):
    assert broken_links(ROOT / "docs" / doc) == []


def test_quick_start_test_command_is_what_ci_runs():
    demo, tests = quick_start_commands()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if "python3.11 -m venv" in line]
    assert len(ci) == 1, ".ci/run holds one set-up-and-test line"
    assert steps(tests) == steps(ci[0]), f"README: {tests!r}\n.ci/run: {ci[0]!r}"


def test_quick_start_demo_command_installs_the_same_way_and_runs_the_demo():
    demo, tests = quick_start_commands()
    (venv, pip, run), (chromium, venv_t, pip_t, _) = steps(demo), steps(tests)
    assert chromium[:3] == ["(command", "-v", "chromium"], "the tests first install chromium"
    assert venv == venv_t
    assert pip[:-1] == pip_t[:-1] and pip[-2:] == ["-e", "."], "same pins, the package without test extras"
    assert run == [".venv/bin/rram-lsm", "demo"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "rram-lsm" in scripts
    assert build_parser().parse_args(["demo"]).command == "demo"


def test_the_ten_line_graph_loads(tmp_path):
    blocks = [body for lang, body in FENCE.findall(section("A graph in ten lines")) if lang == "toml"]
    assert len(blocks) == 1
    assert len(blocks[0].splitlines()) <= 10
    path = tmp_path / "tiny.toml"
    path.write_text(blocks[0])
    graph = load_graph(path, socket_dir=tmp_path)
    assert {n: s.kind for n, s in graph.nodes.items()} == {
        "camera": "synthetic_dvs", "lsm": "lsm", "out": "jsonl_sink"}
    assert graph.sources == ["camera"]


def test_every_figure_links_to_a_doc_that_holds_its_numbers():
    problems = []
    for line in prose_lines(readme()):
        if not FIGURE.search(line):
            continue
        docs = [t.split("#", 1)[0] for t in LINK.findall(line) if t.split("#", 1)[0] in MEASUREMENT_DOCS]
        if not docs:
            problems.append(f"no link to {MEASUREMENT_DOCS}: {line}")
            continue
        text = " ".join((ROOT / d).read_text(encoding="utf-8") for d in docs)
        for number in NUMBER.findall(LINK.sub("", line)):
            if not re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", text):
                problems.append(f"{number} is not in {docs}: {line}")
    assert problems == []


@pytest.mark.parametrize("doc", MEASUREMENT_DOCS)
def test_measurement_docs_exist_with_commands_and_dates(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert re.search(r"`(rram-lsm|python benchmarks/)[^`]*`", text), f"{doc} names no command"
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", text), f"{doc} gives no date"
    assert f"]({doc})" in readme() or f"]({doc}#" in readme(), f"README.md does not link {doc}"

"""Every citation of the design documents in the code resolves to a section of docs/."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("synsim", "artsy", "benchmarks", "tests", "notebooks")
           for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".ipynb", ".yaml")]
SOURCES += [REPO / "pyproject.toml", REPO / "Makefile", REPO / "README.md"]
# "docs/method.md §7-8, A5-A8", "docs/model.md §1, §2, §4.6", "docs/method.md §10 and ... §14"
CITATION = re.compile(r"docs/(\w+)\.md((?:[ ,]*(?:and the decisions of )?§[\d.]+(?:-[\d.]+)?)*)")
SECTION = re.compile(r"§([\d.]+)(?:-([\d.]+))?")
# a bare document name outside docs/, as the code cited the design files before they moved in
STRAY = re.compile(r"(?<![/\w-])(synsim-model|method|architecture|environment|anchors)\.md")


def citations():
    for path in SOURCES:
        text = path.read_text()
        for m in CITATION.finditer(text):
            numbers = [n for a, b in SECTION.findall(m.group(2)) for n in (a, b) if n]
            yield path.relative_to(REPO), m.group(1), [n.rstrip(".") for n in numbers]


def headings(doc: Path) -> set[str]:
    """The numbers of the document's numbered headings: '## 5. ...' -> 5, '### 5.1 ...' -> 5.1."""
    found = re.findall(r"^#+\s+(\d+(?:\.\d+)*)\.?\s", doc.read_text(), flags=re.M)
    return set(found)


def test_the_code_cites_the_documents():
    assert len(list(citations())) > 40


@pytest.mark.parametrize("where, doc, numbers", sorted(citations(), key=str))
def test_citation_resolves(where, doc, numbers):
    path = REPO / "docs" / f"{doc}.md"
    assert path.is_file(), f"{where} cites docs/{doc}.md, which does not exist"
    missing = [n for n in numbers if n not in headings(path)]
    assert not missing, f"{where} cites docs/{doc}.md §{missing}, which has no such heading"


def test_no_citation_of_files_outside_the_repository():
    stray = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in SOURCES
             for m in STRAY.finditer(p.read_text())]
    assert not stray, stray

"""`make docs-check` (also part of `make test`): history lives in commit messages and docs/experiments/, not in
code, configs or the README (DESIGN.md, Docs). A comment or docstring says why, never when: no date in one under
src/ganlab/ or conf/; a config that rests on measured runs names its docs/experiments/ page, and that page exists;
README.md stays a first page (at most 300 lines)."""
import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

import ganlab

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(ganlab.__file__).parent
CONF = ROOT / "conf"
EXPERIMENTS = ROOT / "docs" / "experiments"
README_MAX_LINES = 300

MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
         r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?")
DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b"                                # 2026-12-03
    r"|\b(?:19|20)\d{2}-(?:0[1-9]|1[0-2])\b"                  # 2026-12
    rf"|\b(?:\d{{1,2}} )?{MONTH} (?:\d{{1,2}}, )?(?:19|20)\d{{2}}\b"  # 3 December 2026, Dec 3, 2026, December 2026
    rf"|\b(?:until|as of|since) {MONTH} \d"                    # until Dec 3, as of December 3rd
)
# A date that names a thing rather than when something happened in ganlab: Google's Inception-v3 release of
# 2015-12-05 (inception-2015-12-05.tgz), the graph the FID / Inception Score papers used, which the weight files'
# names carry (torch-fidelity's weights-inception-2015-12-05-6726825d.pth). Allowed only beside the word Inception.
NAMED = re.compile(r"2015-12-05(?=.*inception)|(?<=inception)-?2015-12-05", re.IGNORECASE)


def dates(line: str) -> list[str]:
    """The dates in a comment or docstring line, the named Inception release left out."""
    return [m.group(0) for m in DATE.finditer(NAMED.sub("", line))]


def python_prose(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every comment and docstring-like string (a string alone as a statement) in a file."""
    source = path.read_text()
    lines = [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)
             if t.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines += [(node.lineno + i, text) for i, text in enumerate(node.value.value.splitlines())]
    return lines


YAML_COMMENT = re.compile(r"(?:^|\s)(#.*)$")


def yaml_comments(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every comment in a YAML file (a # at the line's start or after a space)."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = YAML_COMMENT.search(line)
        if m:
            found.append((number, m.group(1)))
    return found


def prose() -> list[tuple[str, int, str]]:
    out = [(str(p.relative_to(ROOT)), n, t) for p in sorted(PACKAGE.rglob("*.py")) for n, t in python_prose(p)]
    out += [(str(p.relative_to(ROOT)), n, t) for p in sorted(CONF.rglob("*.yaml")) for n, t in yaml_comments(p)]
    return out


def test_the_date_finder_finds_dates_and_leaves_names_and_citations():
    """The check below is only as good as this finder: it must flag a date, keep a citation's year and the Inception
    release's name."""
    assert dates("# measured on 2026-12-03, a 2-core Xeon") == ["2026-12-03"]
    assert dates("# the recipe until 2026-12-03") == ["2026-12-03"]
    assert dates("# as of Dec 3, 2026 the rate was 1e-3")
    assert dates("# until December 2026 the limit was 15 minutes")
    assert dates("# as of December 3rd") and dates("# the recipe of 2026-12") == ["2026-12"]
    assert dates("# 3 critic steps until 2000-10000 iterations") == []
    assert dates("# Yazici et al. 2019; R3GAN (Huang et al. 2024)") == []
    assert dates("# the critic no longer wins until 3,000 iterations") == []
    assert dates("# torch-fidelity's weights-inception-2015-12-05-6726825d.pth") == []
    assert dates("the TF 2015-12-05 Inception-v3 graph") == []
    assert dates("a run of 2015-12-05") == ["2015-12-05"]  # that date alone, not naming Inception, is a date


def test_no_comment_or_docstring_holds_a_date():
    """A comment says why, never when: a dated measurement goes to docs/experiments/<experiment>.md."""
    found = [f"{path}:{n}: {', '.join(d)}: {text.strip()[:100]}" for path, n, text in prose() if (d := dates(text))]
    assert not found, ("comments or docstrings with a date (say why without it; move dated runs to "
                       "docs/experiments/<experiment>.md):\n" + "\n".join(found))


PAGE = re.compile(r"docs/experiments/[\w.-]+\.md")


def test_every_experiments_page_a_config_names_exists():
    named = {(str(p.relative_to(ROOT)), m.group(0)) for p in sorted(CONF.rglob("*.yaml"))
             for m in PAGE.finditer(p.read_text())}
    assert named, "no config names a docs/experiments/ page: the test would check nothing"
    missing = [f"{path} names {page}" for path, page in sorted(named) if not (ROOT / page).is_file()]
    assert not missing, "experiments pages named in conf/ that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("page", sorted(p.name for p in EXPERIMENTS.glob("*.md")))
def test_each_experiments_page_belongs_to_an_experiment_that_links_it(page):
    """docs/experiments/<name>.md holds the runs behind conf/experiment/<name>.yaml, which links it back, or the
    runs behind a topic page's numbers (docs/performance.md's bench runs), which links it."""
    config = CONF / "experiment" / page.replace(".md", ".yaml")
    topics = [t for t in (ROOT / "docs").glob("*.md") if f"experiments/{page}" in t.read_text()]
    if topics and not config.is_file():
        return
    assert config.is_file(), (f"docs/experiments/{page}: no conf/experiment/{config.name} (name a page after its "
                              f"experiment) and no docs/<topic>.md links it")
    assert f"docs/experiments/{page}" in config.read_text(), (
        f"conf/experiment/{config.name} does not link docs/experiments/{page}: add "
        f"`# The runs behind these choices (command, machine, date, seeds): docs/experiments/{page}`")


def test_readme_is_at_most_300_lines():
    """The README is the first page; depth goes to docs/<topic>.md, recipe history to docs/experiments/."""
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, (f"README.md has {n} lines, over {README_MAX_LINES}: move depth to docs/<topic>.md "
                                   "and runs to docs/experiments/<experiment>.md")

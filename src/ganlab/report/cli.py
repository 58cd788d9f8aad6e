"""`python report.py DIR… [--out report.md] [--intro FILE]… [--floor FILE.json]…`: run and sweep folders -> a Markdown report with
its PNG figures in a folder named after it (report.md -> report_files/). Every input is read and checked
before anything is written; bad input is one `ganlab: report: …` line and exit status 1."""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from .collect import ReportError, collect, group, match_floors, read_floor
from .markdown import render
from .plots import critic_scatter, curves, montage
from .stats import quality_metric, table_metrics


def figures_for(data: str, groups, folder: Path, base: Path) -> dict[str, str]:
    """Draw a data set's figures into `folder`; their paths relative to the report's folder `base`."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", data)
    made = {}
    metrics = table_metrics(groups)  # each against iterations and against time
    if metrics:
        made["curves"] = curves(groups, metrics, folder / f"{stem}_curves.png")
    if any(g.first.samples is not None for g in groups):
        made["samples"] = montage(groups, folder / f"{stem}_samples.png")
    critics = {quality_metric(r) for g in groups for r in g.runs if "train/wasserstein" in r.series} - {None}
    if critics:
        made["critic"] = critic_scatter(groups, sorted(critics)[0], folder / f"{stem}_critic.png")
    return {k: p.relative_to(base).as_posix() for k, p in made.items()}


def write_report(dirs: list[str], out: Path, intro: list[Path] | Path | None = None,
                 command: str = "python report.py", floors: list[Path] | None = None) -> Path:
    """Read `dirs`, then write `out` and its figures into `out`'s sibling folder <stem>_files/; the `intro` files
    go after the title, in order; each `floors` file (evaluate.py floor=DATA) is a row under its data set's runs."""
    runs = collect(dirs)
    found = [read_floor(p) for p in floors or []]
    texts = []
    for path in [intro] if isinstance(intro, Path) else intro or []:
        try:
            texts.append(path.read_text().rstrip() + "\n")
        except (OSError, UnicodeDecodeError) as e:
            raise ReportError(f"--intro {path}: cannot read it ({e})") from None
    text = "\n".join(texts) or None
    if out.is_dir():
        raise ReportError(f"--out {out} is a folder: give the Markdown file to write, e.g. --out {out / 'report.md'}")
    base = out.parent
    folder = base / f"{out.stem}_files"
    groups = group(runs)
    by_data = match_floors(found, groups)
    figures = {data: figures_for(data, gs, folder, base) for data, gs in groups.items()}
    base.mkdir(parents=True, exist_ok=True)
    out.write_text(render(command, dirs, runs, groups, figures, text, by_data))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="report.py", description="Compare ganlab runs: a Markdown report with "
                                     "tables (mean ± std over seeds), curves, samples and the WGAN critic check.")
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="run folders (outputs/…) or sweep folders (multirun/…)")
    parser.add_argument("--out", default="report.md", type=Path,
                        help="the Markdown file (default report.md); figures go to <stem>_files/ beside it")
    parser.add_argument("--intro", type=Path, metavar="FILE", action="append",
                        help="Markdown inserted after the title (repeat it for several files, kept in order)")
    parser.add_argument("--floor", type=Path, metavar="FILE.json", action="append",
                        help="what real held-out images score (python evaluate.py floor=DATA): a row under that data "
                             "set's runs (repeat it for several)")
    args = parser.parse_args(argv)
    command = "python report.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        out = write_report(args.dirs, args.out, args.intro, command, args.floor)
    except ReportError as e:
        sys.exit(f"ganlab: report: {e}")
    print(f"wrote {out} (figures in {out.parent / (out.stem + '_files')})")

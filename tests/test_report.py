"""report.py on real run folders: a toy WGAN-GP sweep (2 settings x 2 seeds, and a setting that fails with a
config error), an image WGAN-GP run with FID, and older-style folders without status.json. The numbers in the
report are checked against the csv files read here on their own, Spearman against scipy."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

from ganlab.evaluate import evaluate_floor
from ganlab.report import main
from ganlab.report.collect import collect, group
from ganlab.report.markdown import pm
from ganlab.report.stats import rankdata, spearman, summarize, table_metrics

from . import launcher
from .conftest import ROOT, train_py

TINY = ["iterations=40", "metrics.every=10", "metrics.toy_n=500", "net.g.hidden=32", "net.d.hidden=32",
        "trainer.log_every_n_steps=10", "trainer.enable_progress_bar=false"]
SETTINGS = {"regularizer.gp.weight=1": [1, 2], "regularizer.gp.weight=10": [1, 2]}  # setting -> seeds


@pytest.fixture(scope="session")
def sweep(tmp_path_factory) -> Path:
    """`python train.py -m`: WGAN-GP on ring8 with gp weight 1 and 10 over seeds 1, 2 (4 completed jobs), then
    gp weight -1 (2 jobs refused with a config error, which the sweep records and goes on)."""
    out = tmp_path_factory.mktemp("sweep")
    done = train_py("-m", "data=ring8", "model=wgan_gp", "optim.g.lr=1e-3", *TINY, "regularizer.gp.weight=1,10,-1",
                    "seed=1,2", f"hydra.sweep.dir={out}")
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: the sweep says some jobs failed
    assert len(list(out.glob("*/csv/metrics.csv"))) == 4, done.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def image_run(tmp_path_factory, idx_root, fixture_classifier) -> Path:
    """A WGAN-GP run on small idx images, FID on the fixture's domain classifier (found in the tests' cache)."""
    out = tmp_path_factory.mktemp("images") / "run"
    done = train_py("model=wgan_gp", f"data.root={idx_root}", "net.g.ch=8", "net.d.ch=8", "data.batch_size=16",
                    "iterations=6", "metrics.every=2", "metrics.n=64", "metrics.kid_subset=32",
                    "metrics.features=classifier", "trainer.log_every_n_steps=2", "callbacks.samples.every=3",
                    "trainer.enable_progress_bar=false", f"hydra.run.dir={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def report(tmp_path_factory, sweep, image_run) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("report") / "study.md"
    intro, more = out.parent / "intro.md", out.parent / "more.md"
    intro.write_text("Protocol: **two gradient-penalty weights**, published W1 = 0.1.\n")
    more.write_text("## FID on a published protocol\n")
    main([str(sweep), str(image_run), "--out", str(out), "--intro", str(intro), "--intro", str(more)])
    return out.read_text(), out


def columns(run: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv read here: column -> [(step, value)] where the cell is filled."""
    cols: dict[str, list[tuple[int, float]]] = {}
    with open(run / "csv" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k != "step" and v:
                    cols.setdefault(k, []).append((int(row["step"]), float(v)))
    return cols


def table_row(text: str, first_cell: str, header_start: str) -> dict[str, str]:
    """The row whose first cell is given, in a Markdown table whose header starts with `header_start`."""
    lines = text.splitlines()
    for h in (i for i, line in enumerate(lines) if line.startswith(header_start)):
        header = [c.strip() for c in lines[h].strip("|").split("|")]
        for line in lines[h + 2:]:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] == first_cell:
                return dict(zip(header, cells))
    raise AssertionError(f"no row {first_cell!r} under {header_start!r}")


def section_table(text: str, data: str, title: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The header and the rows (by first cell; a long table's by 'group / metric') of the table under
    `### title` in the section of data set `data`."""
    (section,) = [s for s in text.split("## Data set ")[1:] if s.startswith(f"`{data}`")]
    lines = section.split(f"### {title}\n", 1)[1].splitlines()
    h = next(i for i, line in enumerate(lines) if line.startswith("|"))
    header = [c.strip() for c in lines[h].strip("|").split("|")]
    rows = {}
    for line in lines[h + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0] if header[1] != "metric" else f"{cells[0]} / {cells[1]}"] = dict(zip(header, cells))
    return header, rows


def fake_run(folder: Path, data: str, overrides: list[str], seed: int, series: dict[str, list[float]],
             every: int = 10) -> Path:
    """A completed run folder as train.py leaves it, without training: `series` gives each column's values at
    steps every, 2 * every, ... (time/seconds included)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / "csv").mkdir()
    steps = every * max(len(v) for v in series.values())
    overrides = [f"data={data}", *overrides, f"seed={seed}"]
    (folder / ".hydra" / "config.yaml").write_text(f"seed: {seed}\niterations: {steps}\n")
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "csv" / "hparams.yaml").write_text(f"seed: {seed}\niterations: {steps}\nmetrics/features: fake-1\n"
                                                 "metrics:\n  n: 100\n")
    names = list(series)
    with open(folder / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *names])
        for i in range(steps // every):
            w.writerow([every * (i + 1), *(series[k][i] if i < len(series[k]) else "" for k in names)])
    (folder / "status.json").write_text(json.dumps({"status": "completed", "error": None, "overrides": overrides}))
    return folder


def fake_study(root: Path, data: str, metrics: dict[str, bool], timed: bool) -> list[Path]:
    """Two settings x two seeds of made-up curves of `metrics` (name -> higher is better), each with an
    evaluation better than its last (so final and best differ)."""
    rng = np.random.default_rng(len(metrics))
    runs = []
    for setting in ("optim.g.lr=1e-3", "optim.g.lr=1e-4"):
        for seed in (0, 1):
            series = {}
            for m, higher in metrics.items():
                v = rng.uniform(1, 2, 4)
                v[1] = v.max() + 1 if higher else v.min() - 0.5  # the best is not the last
                series[m] = list(v)
            if timed:
                series["time/seconds"] = list(np.cumsum(rng.uniform(30, 60, 4)))
            runs.append(fake_run(root / f"{data}_{setting}_{seed}", data, [setting], seed, series))
    return runs


def expected(runs: list[Path], metric: str, higher: bool) -> tuple[str, str]:
    """final and best as the tables print them (mean ± std over `runs`), from their csv files read here."""
    values = [[v for _, v in columns(r)[metric]] for r in runs]
    final = np.array([v[-1] for v in values])
    best = np.array([max(v) if higher else min(v) for v in values])
    return pm(final.mean(), final.std(ddof=1)), pm(best.mean(), best.std(ddof=1))


TOY = {"val/modes": True, "val/hq": True, "val/w1": False}
LABELLED = {"val/fid": False, "val/kid": False, "val/is": True, "val/classes": True, "val/class_kl": False,
            "val/class_acc": True, "val/precision": True, "val/recall": True, "val/density": True,
            "val/coverage": True}
IMAGES = {m: h for m, h in LABELLED.items() if m not in ("val/classes", "val/class_kl", "val/class_acc")}


@pytest.mark.parametrize("data, metrics, timed, main_columns", [
    ("ring8", TOY, True, ["val/modes ↑", "val/hq ↑", "val/w1 ↓"]),
    # labelled images (stacked): FID, the mode count and its KL, precision and recall; IS and KID go below
    ("stacked", LABELLED, True, ["val/fid ↓", "val/classes ↑", "val/class_kl ↓", "val/precision ↑",
                                 "val/recall ↑"]),
    ("stacked", LABELLED, False, ["val/fid ↓", "val/is ↑", "val/classes ↑", "val/class_kl ↓", "val/precision ↑",
                                  "val/recall ↑"]),  # no minutes column: room for one more
    ("cifar10", IMAGES, True, ["val/fid ↓", "val/kid ↓", "val/is ↑", "val/precision ↑", "val/recall ↑"]),
])
def test_main_table_is_the_final_value_of_the_metrics_that_matter(tmp_path, data, metrics, timed, main_columns):
    """At most 8 columns: group, n, minutes and the final value of the data's main metrics; their best values in
    the table below with the same columns; every other logged metric, final and best, in a long table."""
    runs = fake_study(tmp_path, data, metrics, timed)
    main([*map(str, runs), "--out", str(tmp_path / "r.md")])
    text = (tmp_path / "r.md").read_text()
    header, rows = section_table(text, data, "Final metrics")
    assert header == ["group", "n"] + (["minutes"] if timed else []) + main_columns and len(header) <= 8
    best_header, best_rows = section_table(text, data, "Best during the run")
    assert best_header == ["group", "n"] + main_columns
    shown = [c.split(" ")[0] for c in main_columns]
    others = [m for m in metrics if m not in shown]
    for setting in ("optim.g.lr=1e-3", "optim.g.lr=1e-4"):
        folders = [r for r in runs if setting in r.name]
        assert rows[setting]["n"] == best_rows[setting]["n"] == "2"
        for column, m in zip(main_columns, shown):
            final, best = expected(folders, m, metrics[m])
            assert rows[setting][column] == final and best_rows[setting][column] == best and final != best
        if timed:
            minutes = np.array([columns(f)["time/seconds"][-1][1] / 60 for f in folders])
            assert rows[setting]["minutes"] == pm(minutes.mean(), minutes.std(ddof=1))
        if others:
            _, long = section_table(text, data, "Other metrics")
            for m in others:
                row = long[f"{setting} / {m} {'↑' if metrics[m] else '↓'}"]
                assert (row["final"], row["best"]) == expected(folders, m, metrics[m]) and row["n"] == "2"
    assert ("### Other metrics" in text) == bool(others)


def test_the_main_table_ranks_registered_names():
    """PRIORITY names metrics the registry has (a renamed metric would silently leave the main table)."""
    from ganlab.metrics import registry
    from ganlab.report.stats import PRIORITY

    assert set(PRIORITY) <= {name for f in registry.families() for name in f.higher}
    assert len(set(PRIORITY)) == len(PRIORITY)


@pytest.mark.slow
def test_runs_are_grouped_by_setting_over_seeds(sweep, report):
    groups = group(collect([sweep]))
    assert list(groups) == ["ring8"]
    assert {g.label: [r.seed for r in g.runs] for g in groups["ring8"]} == SETTINGS
    text, _ = report
    for label, seeds in SETTINGS.items():
        assert table_row(text, label, "| group | n |")["n"] == str(len(seeds))


def test_tables_hold_mean_and_std_over_seeds_of_final_and_best(sweep, report):
    text, _ = report
    by_setting: dict[str, list[Path]] = {}
    for folder in sorted(sweep.glob("*/csv/metrics.csv")):
        run = folder.parent.parent
        overrides = (run / ".hydra" / "overrides.yaml").read_text()
        setting = next(s for s in SETTINGS if f"- {s}\n" in overrides)
        by_setting.setdefault(setting, []).append(run)
    for setting, folders in by_setting.items():
        row = section_table(text, "ring8", "Final metrics")[1][setting]
        best_row = section_table(text, "ring8", "Best during the run")[1][setting]
        for metric, higher in TOY.items():
            final, best = expected(folders, metric, higher)
            assert row[f"{metric} {'↑' if higher else '↓'}"] == final
            assert best_row[f"{metric} {'↑' if higher else '↓'}"] == best
        minutes = np.array([columns(f)["time/seconds"][-1][1] / 60 for f in folders])
        assert row["minutes"] == pm(minutes.mean(), minutes.std(ddof=1))
    # the best W1 is the lowest of each run, not the highest (W1 moves in these runs)
    g = group(collect([sweep]))["ring8"][0]
    w1 = [[v for _, v in columns(r.path)["val/w1"]] for r in g.runs]
    assert summarize(g, "val/w1").best[0] == pytest.approx(np.mean([min(v) for v in w1]))
    assert np.mean([min(v) for v in w1]) < np.mean([max(v) for v in w1])


@pytest.mark.slow
def test_figures_are_valid_pngs(report):
    text, out = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    names = {Path(link).name for link in links}
    assert {"ring8_curves.png", "ring8_samples.png", "ring8_critic.png", "fashion_mnist_curves.png",
            "fashion_mnist_samples.png", "fashion_mnist_critic.png"} <= names
    for link in links:
        path = out.parent / link
        assert path.parent.name == "study_files"
        with Image.open(path) as im:
            assert im.format == "PNG" and min(im.size) > 100
            im.verify()


def test_curves_plot_every_table_metric_against_iterations_and_time(sweep, image_run, report):
    """Each metric of a data set's table gets a panel against the iteration and one against the time below it,
    four metrics to a row of panel pairs (5 x 4 inches each at 100 dpi)."""
    _, out = report
    for data, groups in group(collect([sweep, image_run])).items():
        n = len(table_metrics(groups))
        assert n >= (3 if data == "ring8" else 8)  # toy: modes, hq, w1; images: fid, kid, classes, ..., coverage
        with Image.open(out.parent / "study_files" / f"{data}_curves.png") as im:
            assert im.size == (500 * min(n, 4), 400 * 2 * -(-n // 4))


@pytest.mark.filterwarnings("ignore:An input array is constant")
def test_spearman_equals_scipy():
    rng = np.random.default_rng(0)
    for n in (2, 3, 7, 50):
        for _ in range(20):
            x, y = rng.integers(0, 5, n).astype(float), rng.normal(size=n)  # x has ties
            expected = spearmanr(x, y).statistic
            if np.isnan(expected):
                assert np.isnan(spearman(x, y))
            else:
                assert spearman(x, y) == pytest.approx(expected, abs=1e-12)
    x = rng.normal(size=30)
    assert spearman(x, x ** 3) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    from scipy.stats import rankdata as scipy_rankdata

    ties = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    assert np.array_equal(rankdata(ties), scipy_rankdata(ties))


def test_critic_table_gives_spearman_of_the_aligned_steps(sweep, image_run, report):
    text, _ = report
    assert "the `train/wasserstein` row of the same step" in text and "exact earth mover's distance" in text
    pooled = {"val/w1": ([], []), "val/fid": ([], [])}
    for run in [p.parent.parent for p in sweep.glob("*/csv/metrics.csv")] + [image_run]:
        cols = columns(run)
        metric = "val/fid" if "val/fid" in cols else "val/w1"
        w, q = dict(cols["train/wasserstein"]), dict(cols[metric])
        steps = sorted(set(w) & set(q))
        assert len(steps) >= 3
        rho = spearmanr([w[s] for s in steps], [q[s] for s in steps]).statistic
        row = table_row(text, f"`{run}`", "| run | group |")
        assert row["pairs"] == str(len(steps)) and row["against"] == metric
        assert row["Spearman ρ"] == ("—" if np.isnan(rho) else f"{rho:+.3f}")
        pooled[metric][0].extend(w[s] for s in steps)
        pooled[metric][1].extend(q[s] for s in steps)
    sections = text.split("## Data set")
    for metric, (w, q) in pooled.items():
        (section,) = [s for s in sections if f"| {metric} |" in s]
        row = table_row(section, "**pooled**", "| run | group |")
        assert row["Spearman ρ"] == f"{spearmanr(w, q).statistic:+.3f}" and row["pairs"] == str(len(w))


def test_image_runs_name_the_feature_network_and_n(image_run, report):
    text, _ = report
    import yaml

    hparams = yaml.safe_load((image_run / "csv" / "hparams.yaml").read_text())
    assert hparams["metrics/features"].startswith("classifier-")
    assert f"FID / KID on the features of `{hparams['metrics/features']}`, N = 64 generated images" in text
    row = section_table(text, "fashion_mnist", "Final metrics")[1]["(the shared overrides only)"]
    best_row = section_table(text, "fashion_mnist", "Best during the run")[1]["(the shared overrides only)"]
    fid = [v for _, v in columns(image_run)["val/fid"]]
    assert row["val/fid ↓"] == pm(fid[-1], float("nan")) and best_row["val/fid ↓"] == pm(min(fid), float("nan"))


def test_toy_sections_state_the_mode_counting_settings(report):
    text, _ = report  # the sweep's runs keep metrics.k = 3 and metrics.min_count = 1
    assert ("Toy metrics on 500 generated samples (`metrics.toy_n`): `val/hq` is the fraction within 3.0 std of their "
            "nearest mode (`metrics.k`), `val/modes` counts the modes nearest to at least 1 of those high-quality "
            "samples (`metrics.min_count`") in text


def test_intro_follows_the_title(report):
    text, _ = report
    assert text.startswith("# GAN runs report\n\nProtocol: **two gradient-penalty weights**, published W1 = 0.1.\n"
                           "\n## FID on a published protocol\n")  # several --intro files, in order


def test_failed_runs_are_listed_with_their_error(sweep, report):
    text, _ = report
    failed = [p.parent for p in sorted(sweep.glob("*/status.json"))
              if json.loads(p.read_text())["status"] != "completed"]
    assert len(failed) == 2  # the gp weight -1 jobs
    for run in failed:
        status = json.loads((run / "status.json").read_text())
        row = table_row(text, f"`{run}`", "| run | data | overrides |")
        assert row["status"] == "config_error" == status["status"]
        assert "regularizer.gp.weight" in status["error"] and row["error"] == status["error"].replace("|", "\\|")
        assert "`regularizer.gp.weight=-1`" in row["overrides"]
        assert text.count(f"`{run}`") == 1  # in no group, table or plot of completed runs


def test_runs_without_status_files_are_judged_by_their_csv(sweep, tmp_path):
    """Older runs: completed when the csv reaches `iterations`; a run marked failed in status.json is left out."""
    runs = sorted(p.parent.parent for p in sweep.glob("*/csv/metrics.csv"))
    old, cut, broken = tmp_path / "old", tmp_path / "cut", tmp_path / "broken"
    for src, dst in ((runs[0], old), (runs[1], cut), (runs[2], broken)):
        shutil.copytree(src, dst)
    for d in (old, cut):
        (d / "status.json").unlink()
    lines = (cut / "csv" / "metrics.csv").read_text().splitlines(keepends=True)
    (cut / "csv" / "metrics.csv").write_text("".join(l for l in lines if not l.startswith(("30,", "40,"))))
    status = json.loads((broken / "status.json").read_text())
    (broken / "status.json").write_text(json.dumps({**status, "status": "failed", "error": "RuntimeError: boom"}))
    timed = tmp_path / "timed"  # trainer.max_time stopped it: scored at its last evaluation, a run at a time budget
    shutil.copytree(runs[3], timed)
    (timed / "status.json").write_text(json.dumps({**json.loads((timed / "status.json").read_text()),
                                                    "status": "stopped", "error": "stopped by the time limit"}))
    got = {r.path.name: (r.status, r.error) for r in collect([old, cut, broken, timed])}
    assert got == {"old": ("completed", None), "cut": ("incomplete", "csv/metrics.csv ends at iteration 20 of 40"),
                   "broken": ("failed", "RuntimeError: boom"), "timed": ("stopped", "stopped by the time limit")}
    main([str(old), str(cut), str(broken), "--out", str(tmp_path / "r.md")])
    text = (tmp_path / "r.md").read_text()
    assert table_row(text, f"`{broken}`", "| run | data |")["error"] == "RuntimeError: boom"
    assert table_row(text, f"`{cut}`", "| run | data |")["status"] == "incomplete"
    (g,) = group(collect([old, cut, broken]))["ring8"]
    assert [r.path for r in g.runs] == [old]
    assert [r.path for g in group(collect([old, cut, broken, timed]))["ring8"] for r in g.runs] == [old, timed]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "not_a_run", "one_bad_of_two"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, sweep, case):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a run")
    dirs = {"missing": [str(tmp_path / "nope")], "not_a_run": [str(tmp_path / "plain")],
            "one_bad_of_two": [str(sweep), str(tmp_path / "plain")]}[case]
    out = tmp_path / "out" / "report.md"
    done = launcher.run(ROOT / "report.py", *dirs, "--out", str(out), cwd=tmp_path,
                        env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganlab: report: ") and dirs[-1] in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_a_floor_is_a_row_under_its_data_sets_runs(tmp_path, image_run, idx_root, fixture_classifier):
    """--floor FILE (evaluate.py floor=DATA): what real held-out images score, as a row of the final table with the
    file's values; a floor of another N or network, or of a data set no run trains on, is refused."""
    opts = [f"data.root={idx_root}", "metrics.kid_subset=32", "metrics.features=classifier"]
    floors = {}
    for n in (64, 32):
        floors[n] = tmp_path / f"floor{n}.json"
        floors[n].write_text(json.dumps(evaluate_floor("fashion_mnist", "t10k", [*opts, f"metrics.n={n}"])))
    out = tmp_path / "r.md"
    main([str(image_run), "--out", str(out), "--floor", str(floors[64])])
    text = out.read_text()
    header, rows = section_table(text, "fashion_mnist", "Final metrics")
    row = rows["real t10k images (floor)"]
    values = json.loads(floors[64].read_text())["metrics"]
    for column in header[3:]:
        metric = column.split()[0].removeprefix("val/")
        assert row[column] == (f"{values[metric]:.4g}" if metric in values else "—"), column
    assert row["val/recall ↑"] == "1"
    assert "`python evaluate.py floor=fashion_mnist held_out=t10k metrics.n=64`" in text
    for bad, error in ((floors[32], "N = 32; run"), (tmp_path / "none.json", "no such file")):
        with pytest.raises(SystemExit, match=re.escape(f"ganlab: report: --floor {bad}")) as e:
            main([str(image_run), "--out", str(tmp_path / "bad.md"), "--floor", str(bad)])
        assert error in str(e.value)
    stacked = tmp_path / "stacked.json"
    stacked.write_text(json.dumps({**json.loads(floors[64].read_text()), "floor": "stacked"}))
    with pytest.raises(SystemExit, match="it scores data set 'stacked', which no given run trains on"):
        main([str(image_run), "--out", str(tmp_path / "bad.md"), "--floor", str(stacked)])
    assert not (tmp_path / "bad.md").exists()

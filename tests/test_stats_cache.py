"""The real-statistics cache of FID / KID (metrics/fid.py): a file is shared only by runs whose real images are
the same (stats_key of every image set), two processes filling it at once both succeed and leave one whole file
(checkpoint_io.write_atomically), and a damaged file is computed again."""
import os
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from ganlab.checkpoint_io import write_atomically
from ganlab.data.celeba import CelebA
from ganlab.data.cifar10 import Cifar10
from ganlab.data.class_pair import ClassPair
from ganlab.data.folder import ImageFolder
from ganlab.data.idx import IdxImages
from ganlab.data.stacked import Stacked
from ganlab.data.unpaired import UnpairedFolders
from ganlab.metrics.classifier import Classifier
from ganlab.metrics.suite import Suite

from . import launcher


@pytest.fixture
def classifier(tmp_path) -> str:
    """A real (untrained) domain classifier file: a cheap feature network with a name, as the metrics load it."""
    path = tmp_path / "clf.pt"
    Classifier(channels=1, size=32, width=4).save(path)
    return str(path)


def image_sets(idx_root, cifar_root, celeba_root, folder_root, unpaired_root):
    """Every image datamodule under settings that may change its real(n): seed, size, split, channels."""
    for seed in (0, 1):
        for size in (16, 24):
            yield from (IdxImages(str(idx_root), size=size, seed=seed),
                        IdxImages(str(idx_root), size=size, seed=seed, split="t10k"),
                        Stacked(str(idx_root), size=size, seed=seed),
                        Cifar10(str(cifar_root), size=size, seed=seed),
                        Cifar10(str(cifar_root), size=size, seed=seed, split="test"),
                        CelebA(str(celeba_root), size=size, seed=seed, num_workers=0),
                        CelebA(str(celeba_root), size=size, seed=seed, num_workers=0, split="all"),
                        ImageFolder(str(folder_root), size=size, seed=seed, num_workers=0),
                        ImageFolder(str(folder_root), size=size, channels=1, seed=seed, num_workers=0),
                        ClassPair(str(idx_root), size=size, seed=seed, batch_size=8),
                        ClassPair(str(idx_root), size=size, seed=seed, b=3, batch_size=8),
                        UnpairedFolders(str(unpaired_root), size=size, seed=seed, num_workers=0))


def test_one_cache_key_always_means_the_same_real_images(tmp_path, idx_root, cifar_root, celeba_root, folder_root):
    unpaired = tmp_path / "unpaired"
    shutil.copytree(folder_root / "cats", unpaired / "trainA")
    shutil.copytree(folder_root / "dogs", unpaired / "trainB")
    seen: dict[str, torch.Tensor] = {}  # key -> real(n)
    for dm in image_sets(idx_root, cifar_root, celeba_root, folder_root, unpaired):
        for n in (4, 6):
            key, real = dm.stats_key(n), dm.real(n)
            assert torch.equal(seen.setdefault(key, real), real), f"{key} names two different real sets"
    assert len(seen) == 72  # 12 sets x 2 sizes x 2 n, and again for the 6 whose real(n) depends on the seed
    stacked = [Stacked(str(idx_root), size=16, seed=s) for s in (0, 1)]
    assert stacked[0].stats_key(4) != stacked[1].stats_key(4)  # random triples: a cache file per seed
    assert IdxImages(str(idx_root), seed=0).stats_key(4) == IdxImages(str(idx_root), seed=1).stats_key(4)  # shared


def test_the_same_settings_hit_the_cache_and_others_miss_it(tmp_path, idx_root, classifier, monkeypatch):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))

    def real(seed=0, n=32, size=32):
        """(embeddings computed, real features) of a fresh Suite on stacked data."""
        suite = Suite(Stacked(str(idx_root), size=size, seed=seed), n=n, features="classifier", classifier=classifier)
        feats = suite.real()
        return suite.real_features.computed, feats

    first = real()
    assert first[0] == 1
    again = real()
    assert again[0] == 0 and torch.equal(again[1], first[1])  # read back, nothing embedded
    other_seed = real(seed=1)
    assert other_seed[0] == 1 and not torch.equal(other_seed[1], first[1])
    assert real(n=16)[0] == 1 and real(size=16)[0] == 1
    assert len(list((tmp_path / "cache" / "stats").iterdir())) == 4


def test_a_damaged_cache_file_is_computed_again(tmp_path, idx_root, classifier, monkeypatch):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))
    suite = Suite(IdxImages(str(idx_root)), n=32, features="classifier", classifier=classifier)
    good = suite.real()
    [path] = (tmp_path / "cache" / "stats").iterdir()
    path.write_bytes(path.read_bytes()[:100])  # cut short
    again = Suite(IdxImages(str(idx_root)), n=32, features="classifier", classifier=classifier)
    with pytest.warns(UserWarning, match="do not load .*computing them again"):
        assert torch.equal(again.real(), good)
    assert again.real_features.computed == 1 and torch.equal(torch.load(path, weights_only=True), good)


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "status.json"
    write_atomically(target, lambda tmp: tmp.write_text("old"))

    def half(tmp: Path) -> None:
        tmp.write_text("half of it")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half)
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"] and target.read_text() == "old"


def test_keep_old_writes_beside_an_existing_file_and_never_over_it(tmp_path):
    target = tmp_path / "a.lucic2018.json"
    written = [write_atomically(target, lambda tmp, i=i: tmp.write_text(str(i)), keep_old=True) for i in range(3)]
    assert [p.name for p in written] == ["a.lucic2018.json", "a.lucic2018.1.json", "a.lucic2018.2.json"]
    assert [p.read_text() for p in written] == ["0", "1", "2"] and len(list(tmp_path.iterdir())) == 3


# One process of the race below: the real statistics of the idx fixture at several N, into $GANLAB_CACHE, after
# every process has loaded everything (a barrier: each touches a file, then waits for all of them).
WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    from ganlab.data.idx import IdxImages
    from ganlab.metrics.suite import Suite

    idx_root, classifier, barrier, processes, out = sys.argv[1:]
    torch.set_num_threads(1)
    dm = IdxImages(idx_root, size=32)
    dm.setup()
    suites = [Suite(dm, n=n, features="classifier", classifier=classifier) for n in range(16, 257, 16)]
    Path(barrier, out.replace("/", "_")).touch()
    deadline = time.monotonic() + 120
    while len(list(Path(barrier).iterdir())) < int(processes) and time.monotonic() < deadline:
        time.sleep(0.001)
    torch.save({s.n: s.real() for s in suites}, out)
""")


def run_workers(tmp_path: Path, idx_root: Path, classifier: str, cache: Path, names: list[str]) -> list[dict]:
    """Start one worker per name at once (sharing the cache folder), wait for all; their features by N."""
    barrier = tmp_path / f"barrier-{cache.name}"
    barrier.mkdir()
    env = {**os.environ, "GANLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    outs = [tmp_path / f"{name}.pt" for name in names]
    procs = [launcher.popen(script, str(idx_root), classifier, str(barrier), str(len(names)), str(out), env=env,
                            stdout=f"{out}.log") for out in outs]  # processes of their own, torch already imported
    for p, out in zip(procs, outs):
        assert p.wait(timeout=300) == 0, Path(f"{out}.log").read_text()  # both succeed
    return [torch.load(out, weights_only=True) for out in outs]


@pytest.mark.slow
def test_two_processes_filling_the_same_cache_at_once_both_succeed(tmp_path, idx_root, classifier, monkeypatch):
    first, second = run_workers(tmp_path, idx_root, classifier, tmp_path / "shared", ["first", "second"])
    files = sorted((tmp_path / "shared" / "stats").iterdir())
    assert len(files) == 16 and all(not p.name.startswith(".") for p in files)  # one file per N, no temporary ones
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "alone"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: the same arithmetic, the same bits
    try:
        dm = IdxImages(str(idx_root), size=32)
        alone = {n: Suite(dm, n=n, features="classifier", classifier=classifier).real() for n in first}
    finally:
        torch.set_num_threads(threads)
    for n, feats in alone.items():
        assert torch.equal(first[n], feats) and torch.equal(second[n], feats)  # as one process alone computes them
        [path] = [p for p in files if f"-n{n}_" in p.name]
        assert torch.equal(torch.load(path, weights_only=True), feats)  # the file left is whole

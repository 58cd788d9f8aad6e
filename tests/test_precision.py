"""trainer.precision=auto (trainer=fast's, precision.py): bf16-mixed only where the hardware computes in bf16. A CPU
without bf16 units emulates bf16 many times slower than fp32 (0.2 against 3.3 iterations/s for make train's DCGAN
step on a 2-core AMD EPYC with AVX2 only), so there the run must train, and record, 32-true."""
import pytest
import torch
import yaml

import ganlab.precision as precision
from ganlab.precision import cpu_has_bf16

from .conftest import make_cfg, read_metrics, train_py

TOY_DATA = ["data=ring8", "net.g.hidden=32", "net.d.hidden=32"]
TOY = [*TOY_DATA, "iterations=2", "trainer.accelerator=cpu"]
XEON_AMX = ("flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile "
            "amx_int8\n")
EPYC_AVX2 = "flags\t\t: fpu vme sse sse2 ssse3 fma avx avx2 bmi1 bmi2 sha_ni clzero\n"
SKYLAKE_AVX512 = "flags\t\t: fpu sse2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni\n"
ARM_BF16 = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp bf16 i8mm sve\n"
ARM = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\n"


@pytest.mark.parametrize("text, has", [(XEON_AMX, True), (EPYC_AVX2, False), (SKYLAKE_AVX512, False),
                                       (ARM_BF16, True), (ARM, False), ("processor\t: 0\n", False)],
                         ids=["xeon_amx", "epyc_avx2", "skylake_avx512_no_bf16", "arm_bf16", "arm", "no_flags"])
def test_cpu_bf16_units_are_read_from_the_cpu_flags(tmp_path, text, has):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\n" + text + "\nprocessor\t: 1\n" + text)
    assert cpu_has_bf16(tmp_path / "cpuinfo") is has


def test_unreadable_cpu_flags_mean_fp32(tmp_path):
    assert cpu_has_bf16(tmp_path / "missing") is False


def run_precision(tmp_path, monkeypatch, has_bf16: bool, *overrides) -> str:
    """The precision a CPU run with (or without) bf16 units trained in, as its hparams.yaml records it."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda *a: has_bf16)
    from ganlab.train import train

    train(make_cfg(tmp_path, *TOY, *overrides))
    assert read_metrics(tmp_path)[-1]["step"] == 2
    return yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())["trainer"]["precision"]


@pytest.mark.parametrize("has_bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_trainer_fast_trains_bf16_only_on_a_cpu_with_bf16_units(tmp_path, monkeypatch, has_bf16, expected):
    assert make_cfg(tmp_path, "trainer=fast").trainer.precision == "auto"
    assert run_precision(tmp_path, monkeypatch, has_bf16, "trainer=fast") == expected


def test_auto_means_autocast_on_or_off(tmp_path, monkeypatch):
    """What the resolved value does: under bf16-mixed the critic's forward runs in bf16, under 32-true in fp32."""
    seen = []
    real_linear = torch.nn.functional.linear

    def spy(x, w, b=None):
        seen.append(real_linear(x, w, b).dtype)
        return real_linear(x, w, b)

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    run_precision(tmp_path / "no", monkeypatch, False, "trainer=fast")
    assert seen and set(seen) == {torch.float32}
    seen.clear()
    run_precision(tmp_path / "yes", monkeypatch, True, "trainer=fast")
    assert torch.bfloat16 in seen


def test_explicit_bf16_on_a_cpu_without_bf16_units_is_kept_with_a_warning(tmp_path, monkeypatch):
    with pytest.warns(UserWarning, match=r"trainer\.precision=bf16-mixed on a CPU without bf16 units .*emulated.*"
                                         r"use trainer\.precision=32-true \(or auto\)"):
        assert run_precision(tmp_path, monkeypatch, False, "trainer.precision=bf16-mixed") == "bf16-mixed"


@pytest.mark.slow
def test_the_same_command_continues_a_trainer_fast_run(tmp_path):
    """The run's checkpoint records the resolved precision (32-true or bf16-mixed), the command says auto: the
    folder's run must still be this command's run (train.py resolves before resume.plan compares)."""
    out = tmp_path / "run"
    command = [*TOY_DATA, "iterations=3", "trainer=fast", "trainer.enable_progress_bar=false", "metrics=none",
               f"hydra.run.dir={out}"]
    first = train_py(*command)
    assert first.returncode == 0, first.stderr[-3000:]
    (out / "status.json").unlink()  # as if the run had been killed after its last checkpoint
    again = train_py(*command)  # the checkpoint's config is compared first: a mismatch would be a config error
    assert again.returncode == 0 and "completed (checkpoints/last.ckpt at iteration 3 of 3)" in again.stderr, \
        again.stderr[-3000:]

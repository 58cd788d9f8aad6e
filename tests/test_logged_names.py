"""The names a module declares it logs (GANModule.logged, which check_objective holds optimized_metric to before
training) are the names its runs log: each preset trains two iterations and its metrics.csv columns are compared
with the declaration, so the two cannot drift apart."""
import pytest
from hydra.utils import get_class

from ganlab.train import train

from .conftest import make_cfg, read_metrics
from .test_presets import IMAGES_ONLY, PRESETS, preset_overrides

EXTRA = {  # presets whose names depend on more than the preset: a penalty per critic, the skip counter, ...
    "cyclegan": ["regularizer=[r1]"],
    "dcgan": ["regularizer=[r1,noise]", "model.on_nonfinite=skip"],
    "ebgan": ["model.lambda_pt=0"],
}


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_a_run_logs_the_names_its_module_declares(tmp_path, idx_root, preset):
    toy = preset not in IMAGES_ONLY
    overrides = [f"model={preset}", *preset_overrides(preset, "toy" if toy else "images", idx_root),
                 *(["data.labelled=2"] if preset == "sgan" else []), *EXTRA.get(preset, []), "iterations=2"]
    cfg = make_cfg(tmp_path, *overrides)
    train(cfg)
    logged = {k for row in read_metrics(tmp_path) for k in row if k.startswith(("train/", "val/"))}
    assert logged == get_class(cfg.model._target_).logged(cfg)

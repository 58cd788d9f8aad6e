"""The EMA generator (ema.py) against a plain-Python reference of TensorFlow's warm-up rule
d_t = min(decay, (1 + t) / (10 + t)), and its update count surviving a state_dict round trip."""
import torch

from ganlab.ema import EMA


def reference(values: list[float], decay: float) -> float:
    avg = values[0]  # the copy starts as G's initial weight
    for t, v in enumerate(values[1:]):
        d = min(decay, (1 + t) / (10 + t))
        avg = d * avg + (1 - d) * v
    return avg


def test_warm_up_follows_tensorflows_rule_then_the_fixed_decay():
    g = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(g, decay=0.95)
    values = [g.weight.item()]
    for step in range(400):  # d_t reaches 0.95 at t = 170: both regimes are crossed
        with torch.no_grad():
            g.weight.fill_(float(torch.sin(torch.tensor(step * 0.1))) + step * 0.01)
        values.append(g.weight.item())
        ema.update(g)
    assert abs(ema.model.weight.item() - reference(values, 0.95)) < 1e-5


def test_a_short_run_forgets_the_initial_weights():
    g = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        g.weight.fill_(0.0)
    ema = EMA(g, decay=0.999)
    with torch.no_grad():
        g.weight.fill_(1.0)  # G moves once, then stays
    for _ in range(20):
        ema.update(g)
    # warm-up: the initial weight keeps prod (1 + t) / (10 + t) over t < 20 ~ 1e-8 of the copy; a fixed 0.999
    # would keep 0.999^20 = 98% of it
    assert ema.model.weight.item() > 0.999


def test_update_count_is_checkpointed():
    g = torch.nn.Linear(3, 2)
    ema = EMA(g, decay=0.999)
    for _ in range(7):
        ema.update(g)
    again = EMA(g, decay=0.999)
    again.load_state_dict(ema.state_dict())
    assert again.updates.item() == 7

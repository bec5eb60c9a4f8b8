"""Checkpoints written by an earlier kanext (tests/data/checkpoints_v1, made
before the issue-12 redesign by make.py there) still load, with the same
classes, symbolic state and outputs."""
import json
from pathlib import Path

import pytest
import torch

import kanext
from kanext.symbolic.branch import name_code

DATA = Path(__file__).parent / "data" / "checkpoints_v1"


@pytest.fixture(scope="module")
def expected():
    return json.loads((DATA / "expected.json").read_text())


def test_kan_v1_loads_with_symbolic_edge_and_pruned_edge(expected):
    m = kanext.KAN.load(DATA / "kan")
    assert m.width == [2, 3, 1] and m.grid == [4, 4] and m.k == [3, 3]
    assert m.symbolic_fun[0].funs_name[2][1] == "sin"
    # written before the names' codes were a buffer: rebuilt from the names, so a state_dict carries them
    assert int(m.symbolic_fun[0].funs_code[2, 1]) == name_code("sin") and int(m.symbolic_fun[0].funs_code.count_nonzero()) == 1
    fresh = kanext.KAN([2, 3, 1], grid=4, k=3, dtype=torch.float64)
    fresh.load_state_dict(m.state_dict())
    assert fresh.symbolic_fun[0].funs_name[2][1] == "sin"
    assert float(m.act_fun[0].mask[1, 2]) == 0.0 and float(m.act_fun[1].mask[0, 0]) == 0.0
    x = torch.tensor(expected["input"], dtype=torch.float64)
    torch.testing.assert_close(m(x), torch.tensor(expected["kan"], dtype=torch.float64), rtol=0, atol=0)


def test_lan_v1_loads_with_symbolic_node(expected):
    lan = kanext.LAN.load(DATA / "lan")
    assert lan.width == [2, 3, 1]
    assert lan.layers[0].act.symbolic.funs_name[1] == "sin"
    assert int(lan.layers[0].act.symbolic.funs_code[1]) == name_code("sin")
    x = torch.tensor(expected["input"], dtype=torch.float64)
    torch.testing.assert_close(lan(x), torch.tensor(expected["lan"], dtype=torch.float64), rtol=0, atol=0)


@pytest.mark.parametrize("name, cls", [("kanlinear", kanext.KANLinear), ("spline_activation", kanext.SplineActivation),
                                       ("lan_layer", kanext.LANLayer)])
def test_layer_v1_loads(name, cls):
    m = cls.load(DATA / name)
    assert type(m) is cls
    # the tensors are the saved ones, bit for bit
    from safetensors.torch import load_file

    saved = load_file(str(DATA / f"{name}.safetensors"))
    sd = m.state_dict()
    assert set(saved) == set(sd)
    for key, t in saved.items():
        assert torch.equal(sd[key], t), key

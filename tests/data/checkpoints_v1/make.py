"""How the files beside this script were written (by kanext at commit eab1890, before the
issue-12 redesign): `python tests/data/checkpoints_v1/make.py tests/data/checkpoints_v1`.
They must keep loading, bit for bit, with every later kanext (tests/test_checkpoint_compat.py)."""
import torch, kanext, json, sys
out = sys.argv[1]
torch.manual_seed(0)
# KAN with a fixed symbolic edge, a pruned edge and trained affines
m = kanext.KAN([2, 3, 1], grid=4, k=3, seed=1, dtype=torch.float64, affine_trainable=True)
x = torch.rand(64, 2, dtype=torch.float64) * 2 - 1
m.save_act = True; m(x); m.save_act = False
m.fix_symbolic(0, 1, 2, "sin", verbose=False)
m.remove_edge(1, 0, 0)
with torch.no_grad():
    m.node_bias[0].add_(0.1)
m.save(f"{out}/kan")
kanext.KANLinear(3, 4, grid=5, k=2).save(f"{out}/kanlinear")
# LAN with a symbolic node
lan = kanext.LAN([2, 3, 1], grid=5, seed=2, dtype=torch.float64)
lan.fix_symbolic(0, 1, "sin", x=x, verbose=False)
lan.save(f"{out}/lan")
kanext.SplineActivation(4, grid=3, k=3).save(f"{out}/spline_activation")
kanext.LANLayer(3, 2, grid=4).save(f"{out}/lan_layer")
# expected outputs on a fixed input, for the load test
xe = torch.linspace(-1, 1, 10, dtype=torch.float64)
X2 = torch.stack([xe, xe.flip(0)], 1)
exp = {"kan": m(X2).tolist(), "lan": lan(X2).tolist(), "input": X2.tolist()}
json.dump(exp, open(f"{out}/expected.json", "w"))
print("ok")

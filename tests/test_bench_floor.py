"""The verdict bench's floor (`bench_cam.counted` / `bare`): each backward named by the module where it starts, and the
bare replay making the same passes, checked on a tiny model with hand-written hooks and `torch.autograd.grad`"""
import sys
from pathlib import Path
import torch, torch.nn as nn

sys.path[:0] = [str(Path(__file__).parents[1]/'benchmarks')]
from bench_cam import counted, bare

def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()

def grads_at(m, layer, n_backs):
    "A forward with `layer`'s output made a leaf (as the methods' hooks do), then `n_backs` backwards to it"
    got = []
    def hook(mod, i, o):
        got.append(o.detach().requires_grad_()); return got[-1]
    h = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad(): out = m(torch.randn(2, 4))
    finally: h.remove()
    return [torch.autograd.grad(out[:, j].sum(), got[0], retain_graph=True) for j in range(n_backs)]

def test_counted_names_where_each_backward_starts():
    m = net()
    def f():
        with torch.no_grad(): m(torch.randn(5, 4))  # a forward with no graph: no backward
        grads_at(m, m[0], 2)  # the output of m[0] goes into m[1]: both backwards start there
        with torch.enable_grad():
            x = torch.randn(3, 4, requires_grad=True)
            torch.autograd.grad(m(x).sum(), x)  # the model's own input, which its first layer took first
    calls = counted(f, m)
    assert [(x.shape[0], g, s) for x, g, s in calls] == [(5, False, []), (2, True, ['1', '1']), (3, True, ['0'])]

def test_bare_replays_the_same_passes():
    m = net()
    calls = counted(lambda: grads_at(m, m[1], 3), m)
    assert [(x.shape, g, s) for x, g, s in calls] == [((2, 4), True, ['2'] * 3)]
    graph = []  # whether each layer's output is on the replay's graph
    hs = [l.register_forward_hook(lambda l, i, o: graph.append(o.requires_grad)) for l in m]
    try: again = counted(bare(m, m[0], calls), m)
    finally:
        for h in hs: h.remove()
    assert graph[-3:] == [False, False, True]  # (the graph starts where the backwards did: at m[2]'s input; before,
    # `bare`'s own plain forward, which names the modules that run)
    assert [(x.shape, g, len(s)) for x, g, s in again] == [((2, 4), True, 3)]
    assert torch.is_grad_enabled()  # (the replay leaves grad mode as it was)

def test_bare_falls_back_to_the_layer_when_no_module_took_the_tensor():
    m = net()
    def f():  # the leaf is made from the output and used by a function, not a module: no start
        with torch.enable_grad():
            a = m[0](torch.randn(2, 4)).detach().requires_grad_()
            out = m[2](torch.relu(a))
            m(torch.randn(2, 4))  # (what the counting hook sees: a forward of m with a graph)
            torch.autograd.grad(out.sum(), a)
    calls = counted(f, m)
    assert [s for _, _, s in calls] == [[None]]
    assert len(counted(bare(m, m[0], calls), m)[0][2]) == 1

class Unfused(nn.Module):
    "A layer whose dropout runs only when `unfused` (as a timm ViT's attention: its probabilities go through it then)"
    def __init__(self):
        super().__init__()
        self.lin, self.drop, self.unfused = nn.Linear(4, 4), nn.Dropout(0.), False
    def forward(self, x): return self.drop(self.lin(x)) if self.unfused else self.lin(x)

def test_bare_starts_at_the_nearest_module_a_plain_forward_runs():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 4), Unfused(), nn.Linear(4, 3)).eval()
    def f():  # the backward starts at a tensor only the unfused path feeds to a module (`1.drop`)
        m[1].unfused = True
        try: grads_at(m, m[1].lin, 1)
        finally: m[1].unfused = False
    calls = counted(f, m)
    assert [s for _, _, s in calls] == [['1.drop']]
    graph = []
    hs = [l.register_forward_hook(lambda l, i, o: graph.append(o.requires_grad)) for l in m]
    try: again = counted(bare(m, m[0], calls), m)
    finally:
        for h in hs: h.remove()
    assert graph[-3:] == [False, True, True]  # (from the input of `1`, which holds `1.drop` and runs)
    assert len(again[0][2]) == 1

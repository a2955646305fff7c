"""`method='auto'`, `layer='auto'` and `cam_report` on a learner: the rule checked against measures computed here by
hand, the choice remembered per model and weights, every entry point, bad input, and the user's model and learner left
exactly as they were."""
import copy
from types import SimpleNamespace
import pytest, torch, torch.nn as nn
from fastai.vision.all import resnet18, Tensor, DynamicUnet, create_body
from fastcam.hooks import cam_maps
from fastcam.metrics import perturbation_curves, curve_auc, token_curves, _copy
from fastcam.callback import CAMCallback
from fastcam.kinds import class_probs
from fastcam.interpret import CAMInterpretation
from fastcam.monitor import CAMMonitor
import fastcam.choose as choose
import fastcam.trust  # noqa: F401 (interp.cam_report)
from fastcam.choose import choose_cam
from conftest import no_hooks, hand_curve_auc

def state(model):
    return (copy.deepcopy(model.state_dict()), [m.training for m in model.modules()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            [p.requires_grad for p in model.parameters()])

def assert_same(model, before):
    weights, flags, grads, req = before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert [m.training for m in model.modules()] == flags and no_hooks(model) and torch.is_grad_enabled()
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    assert [p.requires_grad for p in model.parameters()] == req

def test_faithfulness_and_rank_by_hand(learned):
    "Each row's faithfulness equals insertion minus deletion AUC computed here from cam_maps; rows ranked by the rule"
    interp = CAMInterpretation.from_learner(learned, layer='0.6')
    df = interp.cam_report(methods=['gradcam', 'layercam', 'eigencam'], layers=['0.6', '0.7'], max_items=8, steps=5,
                           baseline='zero', road=False)
    x = torch.cat([b[0] for b in learned.dls.test_dl(learned.dls.valid.items[:8])]).as_subclass(Tensor)
    model = learned.model.eval()
    with torch.no_grad(): t = model(x).argmax(1)
    for r in df.itertuples():
        maps = cam_maps(model, x, r.layer, t, r.method)  # (each method checked against its peers elsewhere)
        dele, ins = (hand_curve_auc(model, x, maps, t, mode, 5).mean().item() for mode in ('deletion', 'insertion'))
        assert r.faithfulness == pytest.approx(ins - dele, abs=1e-5) and r.deletion_auc == pytest.approx(dele, abs=1e-5)
    passing = df[df.passes]
    assert list(df.passes) == sorted(df.passes, reverse=True)  # every row that passes ranks before any that fails
    assert list(passing.faithfulness.round(4)) == sorted(passing.faithfulness.round(4), reverse=True)
    assert df['rank'].tolist() == list(range(1, len(df) + 1))
    assert df.set_index(['method', 'layer']).loc[('eigencam', '0.6'), 'verdict'].startswith('fails')
    assert (df.verdict == 'most faithful').sum() == (1 if df.passes.any() else 0)

def test_auto_in_get_preds(learned, monkeypatch):
    "Predictions bit-identical to a plain pass, the model untouched, the choice named and remembered"
    model = learned.model
    model.train(); model[0][1].eval()
    before = state(model)
    model.eval()
    plain = learned.get_preds()
    calls = []
    measure = choose.measure_cams
    monkeypatch.setattr(choose, 'measure_cams', lambda *a, **k: calls.append(1) or measure(*a, **k))
    choose._CHOICES.clear()
    cb = CAMCallback(method='auto', layer='auto')
    preds = learned.get_preds(cbs=cb)
    assert torch.equal(plain[0], preds[0]) and torch.equal(plain[1], preds[1])
    ch = cb.choice
    assert (cb.method_used, cb.layer_name) == (ch.method, ch.layer) and len(calls) == 1
    assert ch.reason.startswith("fastcam 'auto': ") and '16 validation items' in ch.reason
    best = ch.table.iloc[0]
    assert (best.method, best.layer, best['rank']) == (ch.method, ch.layer, 1)
    torch.testing.assert_close(cb.maps, cam_maps(model.eval(), torch.cat([b[0] for b in learned.dls.valid]).as_subclass(
        Tensor), ch.layer, plain[0].argmax(1), ch.method).cpu())
    interp = CAMInterpretation.from_learner(learned, method='auto', layer='auto')  # remembered: not measured again
    assert (interp.cam.method_used, interp.cam.layer_name) == (ch.method, ch.layer) and len(calls) == 1
    label, probs, m = learned.cam_predict(learned.dls.valid_ds.items[0], method='auto', layer='auto')
    assert m.shape == cb.maps.shape[1:] and len(calls) == 1
    model.train(); model[0][1].eval()
    assert_same(model, before)
    model.eval()

def test_choice_measured_again_when_weights_change(learned, monkeypatch):
    calls = []
    measure = choose.measure_cams
    monkeypatch.setattr(choose, 'measure_cams', lambda *a, **k: calls.append(1) or measure(*a, **k))
    choose._CHOICES.clear()
    m = copy.deepcopy(learned)  # (a learner of its own, whose weights we change)
    m.model = copy.deepcopy(learned.model)
    choose_cam(m, methods=['gradcam'], layers=['0.6'], n=4, verbose=False)
    choose_cam(m, methods=['gradcam'], layers=['0.6'], n=4, verbose=False)
    assert len(calls) == 1
    with torch.no_grad(): next(m.model.parameters()).mul_(1.01)
    choose_cam(m, methods=['gradcam'], layers=['0.6'], n=4, verbose=False)
    assert len(calls) == 2

def test_auto_in_the_monitor(learned):
    "The monitor chooses once, at its first record, and keeps that choice"
    m = copy.deepcopy(learned)
    mon = CAMMonitor(m.dls.valid_ds.items[:2], method='auto', target='pred')
    with m.no_bar(), m.no_logging(): m.fit(1, 1e-4, cbs=mon)
    assert mon.cam.choice is not None and mon.cam.method_used == mon.cam.choice.method and len(mon.maps) == 2

def test_bad_input(learned):
    interp = CAMInterpretation.from_learner(learned, layer='0.6')
    with pytest.raises(ValueError, match='Unknown method'): choose_cam(learned, methods=['gradcamm'])
    with pytest.raises(ValueError, match="Unknown layer name .0.99."): choose_cam(learned, layers=["0.99"])
    with pytest.raises(ValueError, match='give 1 <= n <= 40'): choose_cam(learned, n=1000)
    with pytest.raises(ValueError, match=r'in \(-1, 1\]'): interp.cam_report(threshold=1.5)
    with pytest.raises(ValueError, match='words= are for text'): interp.cam_report(words=['cat'])
    with pytest.raises(ValueError, match='Unknown method'): CAMCallback(method='gradcamm')
    with pytest.raises(ValueError, match='No report yet'): CAMInterpretation.from_learner(learned).plot_report()
    empty = SimpleNamespace(model=learned.model, dls=SimpleNamespace(valid=SimpleNamespace(items=[])))
    with pytest.raises(ValueError, match='learn.dls.valid has none'): choose_cam(empty)  # no validation items

class Boom(nn.Module):
    "Fails on its third forward"
    def __init__(self, m): super().__init__(); self.m, self.n = m, 0
    def forward(self, x):
        self.n += 1
        if self.n == 3: raise RuntimeError('boom')
        return self.m(x)

def test_model_untouched_after_an_exception(learned):
    model = learned.model
    model.train(); model[0][1].eval()
    before = state(model)
    model.eval()
    l2 = copy.copy(learned)
    l2.model = Boom(model)  # (kind 'any' now: pass the layer by name)
    with pytest.raises(RuntimeError, match='boom'): choose_cam(l2, methods=['gradcam'], layers=['m.0.6'], n=4)
    model.train(); model[0][1].eval()
    assert_same(model, before)
    model.eval()

def test_class_probs_are_get_preds_activation(learned):
    "What the measures watch is what fastai's get_preds returns"
    preds, _ = learned.get_preds()
    x = torch.cat([b[0] for b in learned.dls.valid]).as_subclass(Tensor)
    with torch.no_grad(): torch.testing.assert_close(class_probs(learned, learned.model.eval()(x)), preds)

def test_token_curves_by_hand():
    "Deletion and insertion over tokens equal a loop written out step by step"
    torch.manual_seed(0)
    class Bag(nn.Module):
        def __init__(self): super().__init__(); self.emb, self.lin = nn.Embedding(10, 4), nn.Linear(4, 3)
        def forward(self, x): return self.lin(self.emb(x).mean(1)), None
    model = Bag()
    texts = [torch.randint(1, 10, (7,)), torch.randint(1, 10, (4,))]
    maps = [torch.rand(7), torch.rand(4)]
    t = torch.tensor([2, 0])
    for mode in ('deletion', 'insertion'):
        got = token_curves(model, texts, maps, t, mode, steps=4)
        for i, (x, m) in enumerate(zip(texts, maps)):
            order = m.argsort(descending=True).tolist()
            for s in range(5):
                k = round(s * len(x) / 4)
                y = x.clone() if mode == 'deletion' else torch.zeros_like(x)
                for j in order[:k]: y[j] = 0 if mode == 'deletion' else x[j]
                want = model(y[None])[0].softmax(-1)[0, t[i]]
                assert got[i, s].item() == pytest.approx(want.item(), abs=1e-6)

def test_a_unet_copy_keeps_its_own_hooks():
    "The randomisation's copy of a fastai U-Net runs as the U-Net does (its decoder reads the encoder through hooks)"
    m = DynamicUnet(create_body(resnet18(), pretrained=False), 3, (32, 32)).eval()
    x1, x2 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = m(x1)
        c = _copy(m)
        m(x2)  # the original's hooks now hold x2's features
        torch.testing.assert_close(c(x1), want)

def test_one_pass_maps_equal_a_hand_hook(learned):
    "layer_maps' Grad-CAM and HiResCAM of two target sets, from one forward, equal a hand-written hook + autograd.grad"
    from fastcam.hooks import layer_maps
    model = learned.model.eval()
    x = torch.cat([b[0] for b in learned.dls.test_dl(learned.dls.valid.items[:4])]).as_subclass(Tensor)
    t, other = torch.tensor([0, 1, 0, 1]), torch.tensor([1, 0, 1, 0])
    calls = []
    h = model.register_forward_hook(lambda m, i, o: calls.append(1))
    try: got = layer_maps(model, x, '0.6', [t, other], ['gradcam', 'hirescam'])
    finally: h.remove()
    assert len(calls) == 1
    for j, c in enumerate((t, other)):
        acts = []
        hh = model[0][6].register_forward_hook(lambda m, i, o: acts.append(o))
        with torch.enable_grad(): out = model(x)
        hh.remove()
        g, = torch.autograd.grad(out.gather(1, c[:, None]).sum(), acts[0])
        a = acts[0].detach()
        torch.testing.assert_close(got[j]['gradcam'], (g.mean((2, 3), keepdim=True) * a).sum(1).relu(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got[j]['hirescam'], (g * a).sum(1).relu(), atol=1e-5, rtol=1e-4)
    assert no_hooks(model)

def test_cam_report_sets(learned, monkeypatch):
    "No methods=: CHEAP_METHODS at the interpretation's layer and the kind's candidates, and its own method; 'all': all"
    import fastcam.trust as trust
    from fastcam.kinds import methods_for, model_kind
    seen = []
    monkeypatch.setattr(trust, 'measure_cams', lambda learn, x, cands, *a, **k: seen.append(cands) or 'table')
    interp = CAMInterpretation.from_learner(learned, layer='0.6', method='layercam')
    interp.cam_report(max_items=2)
    xb = learned.dls.test_dl(learned.dls.valid.items[:1]).one_batch()[0]
    layers = ['0.6', *[n for n, m in learned.model.named_modules() if any(m is c for c in
                                                                        model_kind(learned.model).candidates(learned.model, xb))]]
    assert {(m, l) for m, l, _ in seen[0]} == {(m, l) for m in choose.CHEAP_METHODS for l in layers}
    interp.cam_report(methods='all', max_items=2)
    assert [m for m, l, _ in seen[1]] == methods_for(model_kind(learned.model)) and {l for _, l, _ in seen[1]} == {'0.6'}

def test_sanity_checks_passes_counted(learned):
    "One forward per batch for the plain pass, then per layer one for the maps (both targets) and one per block randomised"
    from fastcam.metrics import cascade_blocks
    interp = CAMInterpretation.from_learner(learned, layer='0.6')
    calls = []
    h = learned.model.register_forward_hook(lambda m, i, o: calls.append(1))
    try: df = interp.sanity_checks(methods=['gradcam', 'hirescam', 'layercam'], layers=['0.6', '0.7'], n=5, batch_size=4)
    finally: h.remove()
    B, L = len(cascade_blocks(learned.model)), 2
    assert len(df) == 6 and len(calls) == 2 * (1 + L * (1 + B))  # ⌈5/4⌉ = 2 batches

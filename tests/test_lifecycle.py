"The user's model and learner are left as they were: hooks, grad mode, flags, gradients, training, export."
import pytest, torch, torch.nn as nn
from fastai.vision.all import Callback, CancelBatchException, set_seed, load_learner, vision_learner, resnet18
from fastcam.hooks import cam_maps, CAMHook
from fastcam.core import cam_head
from fastcam.callback import CAMCallback
from conftest import make_dls, no_hooks, Boom

class BoomInForward(nn.Module):
    def forward(self, x): raise RuntimeError('boom in forward')

def flags(model): return [m.training for m in model.modules()]
def grads(model): return [None if p.grad is None else p.grad.clone() for p in model.parameters()]
def same_grads(a, b): return all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
                                 for x, y in zip(a, b))

def test_exception_mid_pass_leaves_nothing_behind(trained):
    learn = trained
    learn.model.train(); learn.model[0][1].eval()  # a mix of flags, which must come back as they were
    g0, rg = grads(learn.model), [p.requires_grad for p in learn.model.parameters()]
    learn.add_cb(CAMCallback(layer='0.6'))
    try:
        with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=Boom())
        assert torch.is_grad_enabled()
        assert no_hooks(learn.model)
        # fastai's validation puts the model in eval mode: compare with the same failure without our callback
        with learn.removed_cbs(learn.cam):
            learn.model.train(); learn.model[0][1].eval()
            with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=Boom())
            expected = flags(learn.model)
        learn.model.train(); learn.model[0][1].eval()
        with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=Boom())
        assert flags(learn.model) == expected
        with torch.no_grad():
            with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=Boom())
            assert not torch.is_grad_enabled()
    finally: learn.remove_cb(CAMCallback)
    assert no_hooks(learn.model)
    assert same_grads(g0, grads(learn.model))
    assert [p.requires_grad for p in learn.model.parameters()] == rg

def test_cam_maps_exception_in_forward_restores_state():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), BoomInForward())
    model.train(); model[0].eval()
    before = flags(model)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            with pytest.raises(RuntimeError, match='boom in forward'): cam_maps(model, torch.randn(1, 3, 8, 8), '0')
            assert torch.is_grad_enabled() == grad
    assert flags(model) == before and no_hooks(model)

def test_no_param_grad_frozen_body_requires_grad_kept(trained):
    learn = trained
    learn.freeze()
    rg = [p.requires_grad for p in learn.model.parameters()]
    for p in learn.model.parameters(): p.grad = None
    cb = CAMCallback(layer='0.6'); learn.get_preds(cbs=cb)
    assert cb.maps.abs().sum() > 0
    assert [p.requires_grad for p in learn.model.parameters()] == rg
    assert all(p.grad is None for p in learn.model.parameters())
    learn.unfreeze()

def test_existing_param_grads_untouched(trained):
    learn = trained
    for p in learn.model.parameters(): p.grad = torch.full_like(p, 0.5)
    learn.get_preds(cbs=CAMCallback())
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in learn.model.parameters())
    for p in learn.model.parameters(): p.grad = None

def test_preds_losses_metrics_identical(trained):
    learn = trained
    ref = learn.get_preds(with_loss=True, with_decoded=True), learn.validate()
    cb = CAMCallback(layer='0.6', method='gradcam++')
    got = learn.get_preds(with_loss=True, with_decoded=True, cbs=cb), learn.validate(cbs=cb)
    for a, b in zip(ref[0], got[0]): assert torch.equal(a, b)
    assert list(ref[1]) == list(got[1])
    assert cb.maps.shape[0] == len(learn.dls.valid_ds)

def test_seeded_fit_same_losses(pets_path):
    def run(with_cb):
        set_seed(3, reproducible=True)
        learn = vision_learner(make_dls(pets_path), resnet18, pretrained=False)
        if with_cb: learn.add_cb(CAMCallback())
        learn.fit(1, 1e-3)
        return learn.recorder.losses, learn.recorder.values
    a, b = run(False), run(True)
    assert [float(l) for l in a[0]] == [float(l) for l in b[0]]
    assert a[1] == b[1]

def test_export_with_callback(trained, tmp_path):
    learn = trained
    learn.add_cb(CAMCallback(layer='0.6'))
    try:
        learn.get_preds()
        assert learn.cam.maps is not None
        learn.export(tmp_path/'m.pkl')
        learn2 = load_learner(tmp_path/'m.pkl')
        assert learn2.cam.maps is None and learn2.cam.targets is None
        assert no_hooks(learn2.model)
        learn2.predict(learn.dls.valid_ds.items[0])
        assert learn2.cam.maps.shape[0] == 1
    finally: learn.remove_cb(CAMCallback)

def test_inplace_relu_after_layer():
    "An in-place ReLU right after the hooked layer: Grad-CAM still equals the hand-computed map"
    set_seed(4)
    m = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(inplace=True), cam_head(5, 2)).eval()
    x = torch.randn(2, 3, 10, 10)
    maps = cam_maps(m, x, '0', 1, 'gradcam')
    with torch.no_grad(): a = m[0](x)
    w = m[2][-1].weight[1]  # d y_1 / d A = w_k * 1[A>0] / (h*w)
    g = (w[None, :, None, None] * (a > 0)).mean((-2, -1), keepdim=True) / 64
    torch.testing.assert_close(maps, (g * a).sum(1).relu())

def test_module_called_twice_errors():
    class Twice(nn.Module):
        def __init__(self): super().__init__(); self.conv, self.head = nn.Conv2d(3, 3, 1), cam_head(3, 2)
        def forward(self, x): return self.head(self.conv(self.conv(x)))
    m = Twice()
    with pytest.raises(RuntimeError, match='ran twice'): cam_maps(m, torch.randn(1, 3, 4, 4), 'conv')
    assert no_hooks(m) and torch.is_grad_enabled()

def test_tta_maps_are_the_plain_pass(pets_path):
    """learn.tta with a CAMCallback attached: its predictions bit-identical to tta without it, and the maps those of its
    final, un-augmented pass (equal to a plain get_preds), computed in that pass only, never mixed from augmented ones"""
    from fastai.vision.all import ImageDataLoaders, get_image_files, Flip, Rotate, first
    from fastcam.data import is_cat
    dls = ImageDataLoaders.from_name_func(pets_path, get_image_files(pets_path), valid_pct=0.25, seed=21,
                                          label_func=is_cat, bs=8, num_workers=0, batch_tfms=[Flip(p=1.), Rotate(p=1.)])
    set_seed(0)
    learn = vision_learner(dls, resnet18, pretrained=False)
    set_seed(1); ref = learn.tta(n=2)
    plain = CAMCallback(); learn.get_preds(cbs=plain)
    cb = CAMCallback(); learn.add_cb(cb)
    batches = []
    cb._batch = lambda *a, f=cb._batch: batches.append(1) or f(*a)  # counts the batches maps are computed for
    set_seed(1); got = learn.tta(n=2)
    assert all(torch.equal(a, b) for a, b in zip(ref, got))
    assert torch.equal(cb.maps, plain.maps) and len(batches) == len(dls.valid)
    learn.remove_cb(cb)
    with dls.valid.dataset.set_split_idx(0):  # validation items with training augmentations, as in tta: no maps
        learn.get_preds(cbs=(skipped := CAMCallback()))
        xb = first(dls.valid.new(shuffle=False))[0]
    assert skipped.maps is None
    assert not torch.allclose(cam_maps(learn.model, xb, plain.layer_name).cpu(), plain.maps[:len(xb)])  # they'd differ
    assert no_hooks(learn.model)

def test_locate_layer_changes_nothing():
    "The dry forward: train flags, grad mode, BatchNorm statistics and parameter gradients as they were"
    from fastcam.hooks import locate_layer
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).train()
    model[4].eval()
    before, state = flags(model), {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        assert locate_layer(model, torch.randn(2, 3, 16, 16)) == '4'
        assert not torch.is_grad_enabled()  # the caller's grad mode, although the dry forward builds a graph
    assert flags(model) == before and no_hooks(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in model.parameters())

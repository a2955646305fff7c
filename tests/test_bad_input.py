"Each bad argument gets one clear error that names what would work."
import pytest, torch, torch.nn as nn
from fastai.vision.all import create_vision_model, resnet18, Learner, CrossEntropyLossFlat
from fastcam.hooks import cam_maps
from fastcam.methods import CAM_METHODS
from fastcam.callback import CAMCallback

@pytest.fixture(scope='module')
def model(): return create_vision_model(resnet18, 3, pretrained=False).eval()
x = torch.randn(2, 3, 64, 64)

def test_unknown_layer_name(model):
    with pytest.raises(ValueError, match=r"Unknown layer name '0\.42'.*'0\.6'"): cam_maps(model, x, '0.42')

def test_module_not_in_model(model):
    with pytest.raises(ValueError, match='not a submodule'): cam_maps(model, x, nn.Conv2d(3, 3, 1))

def test_layer_never_reached():
    class Skip(nn.Module):
        def __init__(self): super().__init__(); self.used, self.unused = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)
        def forward(self, x): return self.used(x).mean((-2, -1))
    with pytest.raises(RuntimeError, match='did not run'): cam_maps(Skip(), x, 'unused')

def test_unknown_method(model):
    with pytest.raises(ValueError, match=r"choose one of \('cam', 'gradcam'"): cam_maps(model, x, '0', method='grad')
    with pytest.raises(ValueError, match='gradcam'): CAMCallback(method='grad')

def test_scorecam_needs_the_batch_outside_fastai(model):
    "CAMCallback gives Score-CAM its batch (tests/test_scorecam.py); a hook used by hand must be given it too"
    from fastcam.hooks import CAMHook
    with CAMHook(model, '0', 'scorecam') as hook:
        with torch.no_grad(): out = model(x)
        with pytest.raises(ValueError, match='pass x= .* and model='): hook.compute(out)

def test_cam_on_incompatible_head(model):
    with pytest.raises(ValueError, match="method='gradcam'.*cam_head"): cam_maps(model, x, '0', method='cam')

@pytest.mark.parametrize('target', [3, -1, [0, 5]])
def test_target_out_of_range(model, target):
    with pytest.raises(ValueError, match='out of range.*3 classes'): cam_maps(model, x, '0', target)

def test_wrong_number_of_targets(model):
    with pytest.raises(ValueError, match='3 targets for a batch of 2'): cam_maps(model, x, '0', [0, 1, 2])

def test_bad_target_type(model):
    with pytest.raises(TypeError, match="'pred', 'all'"): cam_maps(model, x, '0', 1.5)
    with pytest.raises(ValueError, match="'pred', 'actual', 'all'"): CAMCallback(target='biggest')

def test_actual_without_labels(trained):
    learn = trained
    learn.add_cb(CAMCallback(target='actual'))
    try:
        with pytest.raises(ValueError, match="target='actual' needs labels"): learn.predict(learn.dls.valid_ds.items[0])
        dl = learn.dls.test_dl(learn.dls.valid_ds.items[:3])
        with pytest.raises(ValueError, match="needs labels"): learn.get_preds(dl=dl)
    finally: learn.remove_cb(CAMCallback)

def test_default_layer_of_any_model(trained):
    "A model fastcam does not know gets the last layer before pooling (here the wrapped body), found in a dry forward"
    class Wrap(nn.Module):
        def __init__(self, m): super().__init__(); self.m = m
        def forward(self, x): return self.m(x)
    learn = Learner(trained.dls, Wrap(trained.model), loss_func=trained.loss_func)
    learn.get_preds(cbs=(found := CAMCallback()))
    learn.get_preds(cbs=(named := CAMCallback(layer='m.0')))
    assert found.layer_name == 'm.0' and torch.equal(found.maps, named.maps)

def plain_outputs(dls, *layers): return Learner(dls, nn.Sequential(*layers), loss_func=CrossEntropyLossFlat())

@pytest.mark.parametrize('layers, msg', [
    ((nn.Flatten(), nn.LazyLinear(2)), "No module of this Sequential outputs a spatial map"),
    ((nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)), "first layer '0'"),
])
def test_default_layer_errors(trained, layers, msg):
    "No candidate, or only the first layer: a ValueError naming layer=, and nothing left hooked"
    learn = plain_outputs(trained.dls, *layers)
    with pytest.raises(ValueError, match='pass layer=') as e: learn.get_preds(cbs=CAMCallback())
    assert msg in str(e.value)
    assert not any(m._forward_hooks for m in learn.model.modules())

def test_default_layer_ambiguous(trained):
    "Two branches pooled separately: no single layer is the one before pooling, and the error names both"
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 5, padding=2)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 2)
        def forward(self, x): return self.fc(torch.cat([self.pool(self.a(x)), self.pool(self.b(x))], 1).flatten(1))
    learn = Learner(trained.dls, Branches(), loss_func=CrossEntropyLossFlat())
    with pytest.raises(ValueError, match=r"\['a', 'b'\].*pass layer="): learn.get_preds(cbs=CAMCallback())
    learn.get_preds(cbs=(cb := CAMCallback(layer='b')))
    assert cb.layer_name == 'b' and cb.maps.shape[1:] == (64, 64)

def test_two_cam_callbacks_in_one_pass(trained):
    "One attached and one passed with cbs=: a clear error, and nothing left hooked"
    trained.add_cb(CAMCallback())
    try:
        with pytest.raises(ValueError, match='Two CAMCallbacks in one pass'): trained.get_preds(cbs=CAMCallback())
        assert not any(m._forward_hooks for m in trained.model.modules())
    finally: trained.remove_cb(CAMCallback)

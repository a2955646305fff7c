"""The methods that re-run the model (ablated or masked copies, guided gradients) and the stochastic ones, inside
fastai's own get_preds: predictions and losses bit-identical, maps those of cam_maps on the same items, the user's
model and random state untouched, and nothing left behind after an exception."""
import random, numpy as np, pytest, torch
from fastai.vision.all import Tensor
from fastcam.hooks import cam_maps
from fastcam.core import METHOD_RNG
from fastcam.saliency import guided_relus
from fastcam.methods import register_method, unregister_method, CAMMethod, _cam
from fastcam.perturb import ablation_weights
from fastcam.core import rng_preserved
from fastcam.callback import CAMCallback
from conftest import no_hooks, Boom

METHODS = ['ablationcam', 'sscam2', 'guidedbackprop', 'guidedgradcam', 'randomcam', 'kpcacam', 'fem',
           'segeigencam', 'eigengradcam', 'gradcamelementwise', 'fullgrad', 'smoothgradcam++', 'finercam', 'shapleycam']

@pytest.fixture(scope='module', autouse=True)
def few_samples():
    "SS-CAM with 2 samples: the same code as with 35, at a test's cost (IS-CAM's re-runs go the same way)"
    from fastcam.perturb import sscam_weights
    register_method(CAMMethod('sscam2', _cam, grads=False, rerun=sscam_weights(2)))
    yield
    unregister_method('sscam2')

def valid_x(learn): return torch.cat([xb for xb, *_ in learn.dls.valid]).as_subclass(Tensor)

def rng_states(): return random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()

@pytest.mark.parametrize('method', METHODS)
def test_inside_get_preds(trained, method):
    learn, flags = trained, [m.training for m in trained.model.modules()]
    grads = [None if p.grad is None else p.grad.clone() for p in learn.model.parameters()]  # as training left them
    with rng_preserved():  # the user's generators end where they end without fastcam: fastcam does not draw from them
        ref = learn.get_preds(with_loss=True); plain = rng_states()
    METHOD_RNG.manual_seed(0)
    cb = CAMCallback(layer='0.4', method=method)  # 64 channels: few re-runs
    got = learn.get_preds(with_loss=True, cbs=cb)
    for a, b in zip(ref, got): assert torch.equal(a, b)
    after = rng_states()
    assert after[0] == plain[0] and np.array_equal(after[1], plain[1]) and torch.equal(after[2], plain[2])
    METHOD_RNG.manual_seed(0)
    torch.testing.assert_close(cb.maps, cam_maps(learn.model, valid_x(learn), '0.4', method=method),
                               rtol=1e-4, atol=1e-6)
    assert no_hooks(learn.model)
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, learn.model.parameters()))
    assert [m.training for m in learn.model.modules()] == flags and torch.is_grad_enabled()
    assert not any('forward' in vars(m) for m in learn.model.modules())  # Ablation-CAM's swap: put back

def test_guided_maps_at_the_input_resolution(trained):
    cb = CAMCallback(method='guidedgradcam')
    trained.get_preds(cbs=cb)
    assert cb.maps.shape[-2:] == valid_x(trained).shape[-2:]

def test_nothing_left_after_an_exception(trained):
    learn = trained
    for method in ('ablationcam', 'guidedgradcam'):
        with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=[CAMCallback(method=method), Boom()])
        assert no_hooks(learn.model) and torch.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with guided_relus(learn.model): 1 / 0
    assert no_hooks(learn.model)

def test_bad_input(trained):
    with pytest.raises(ValueError, match=r'in \(0, 1\]'): ablation_weights(0)
    register_method(CAMMethod('abl', _cam, grads=False, rerun=ablation_weights(0.5)))
    try:
        seg = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
        with pytest.raises(ValueError, match='needs class scores'): cam_maps(seg, torch.randn(1, 3, 8, 8), '0', method='abl')
    finally: unregister_method('abl')
    with pytest.raises(ValueError, match="runs the model again"):
        from fastcam.hooks import CAMHook
        with CAMHook(trained.model, '0', 'ablationcam') as h:
            out = trained.model.eval()(valid_x(trained)[:1]); h.compute(out)

"""A method a user registers works wherever a built-in name does, checked against a hand computation; the shared
parameters read the same documentation everywhere."""
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt, pytest, torch
from fastcore.docments import docments
from fastai.vision.all import Tensor, first
from fastcam.methods import CAMMethod, register_method, unregister_method, get_method
from fastcam.hooks import cam_maps, CAMHook
from fastcam.core import CAM_PARAMS
from fastcam.methods import CAM_METHODS
from fastcam.callback import CAMCallback
from fastcam.interpret import CAMInterpretation
from fastcam.monitor import CAMMonitor
import fastcam.trust  # noqa: F401 (cam_report)
from fastai.learner import Learner

def gradmax(A, G, W): return (G.amax(-1, keepdim=True) * A).sum(-2)

@pytest.fixture
def registered():
    register_method(CAMMethod('gradmax', weigh=gradmax))
    yield 'gradmax'
    unregister_method('gradmax')

def hand_gradmax(model, layer, x):
    "The map by hand: a forward hook keeps the layer's output, autograd.grad of the predicted class, the max weight"
    acts = []
    h = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_()  # so that the graph reaches the layer, whatever requires_grad says
            out = model.eval()(x)
            g, = torch.autograd.grad(out.gather(1, out.argmax(1, keepdim=True)).sum(), acts[0])
    finally: h.remove()
    return (g.amax((-2, -1), keepdim=True) * acts[0]).sum(1).relu().detach()

def valid_x(learn): return torch.cat([xb for xb, *_ in learn.dls.valid]).as_subclass(Tensor)

def test_custom_method_in_cam_maps_and_callback(trained, registered):
    learn, x = trained, valid_x(trained)
    want = hand_gradmax(learn.model, learn.model[0][6], x)
    torch.testing.assert_close(cam_maps(learn.model, x, '0.6', method='gradmax'), want, rtol=1e-4, atol=1e-6)
    cb = CAMCallback(layer='0.6', method='gradmax')
    learn.get_preds(cbs=cb)
    torch.testing.assert_close(cb.maps, want.cpu(), rtol=1e-4, atol=1e-6)
    assert cb.method_used == 'gradmax'

def test_custom_method_in_the_interpretation_and_report(trained, registered):
    learn = trained
    interp = CAMInterpretation.from_learner(learn, layer='0.6', method='gradmax')
    torch.testing.assert_close(interp.maps, hand_gradmax(learn.model, learn.model[0][6], valid_x(learn)).cpu(),
                               rtol=1e-4, atol=1e-6)
    fig = interp.plot_cam(idxs=[0, 1], methods=['gradcam', 'gradmax'])
    assert fig.axes[1].get_title().startswith('gradmax @ 0.6')
    plt.close(fig)
    df = interp.cam_report(methods=['gradcam', 'gradmax'], max_items=4, steps=2).set_index('method')
    assert sorted(df.index) == ['gradcam', 'gradmax'] and df.loc['gradmax'].drop('rank').notna().all()

def test_custom_method_in_the_monitor(fresh, registered):
    learn, items = fresh, fresh.dls.valid_ds.items[:2]
    x = first(learn.dls.test_dl(items, bs=2))[0].as_subclass(Tensor)
    want = hand_gradmax(learn.model, learn.model[0][6], x).cpu()  # before training: the monitor's first record
    monitor = CAMMonitor(items, layer='0.6', method='gradmax', target='pred')
    learn.fit(1, 1e-3, cbs=monitor)
    assert len(monitor.maps) == 2
    torch.testing.assert_close(monitor.maps[0], want, rtol=1e-4, atol=1e-6)

def test_error_messages_list_the_registered_methods(registered):
    assert 'gradmax' in CAM_METHODS
    for f in (lambda: get_method('nope'), lambda: CAMCallback(method='nope')):
        with pytest.raises(ValueError, match="'gradmax'"): f()
    with pytest.raises(ValueError, match='registered already'): register_method(CAMMethod('gradmax', weigh=gradmax))

def test_gone_once_unregistered():
    assert 'gradmax' not in CAM_METHODS
    with pytest.raises(ValueError, match="Unknown method 'gradmax'"): get_method('gradmax')

SHARED = ('layer', 'method', 'target', 'reshape', 'region', 'batch_size')

@pytest.mark.parametrize('f', [cam_maps, CAMHook, CAMCallback, CAMInterpretation.from_learner, CAMMonitor,
                               CAMInterpretation.item_cams, Learner.cam_predict, Learner.show_cam],
                         ids=lambda f: f.__qualname__)
def test_shared_parameters_documented_once(f):
    "Each shared parameter's documentation is that of `CAM_PARAMS`, wherever it is a parameter (`target` may say more)"
    docs = docments(f)
    shared = [p for p in SHARED if p in docs]
    own = dict(target=lambda d: 'CAM_PARAMS' in d, region=lambda d: d.startswith('Dense outputs only'))  # may say more
    assert shared and all(docs[p] == CAM_PARAMS[p] or p in own and own[p](docs[p]) for p in shared), \
        {p: docs[p] for p in shared}

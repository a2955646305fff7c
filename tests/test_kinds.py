"""Multi-label, segmentation and regression learners, checked against independent computations: captum's LayerGradCam
per label, a hand-written hook + autograd.grad for the segmentation score, fastai's own decoding; titles as text."""
import matplotlib; matplotlib.use('Agg')
import pytest, torch
from captum.attr import LayerGradCam
from fastai.vision.all import vision_learner, unet_learner, resnet18, set_seed, Tensor, first
from fastcam.callback import CAMCallback
from fastcam.kinds import task_kind
from fastcam.hooks import cam_maps
from fastcam.interpret import CAMInterpretation
from fastcam.shapes import synth_shapes, shapes_dls
from conftest import no_hooks

@pytest.fixture(scope='module')
def shapes_path(tmp_path_factory):
    path = tmp_path_factory.mktemp('shapes'); synth_shapes(path, n=40, size=64, seed=3)
    return path

@pytest.fixture(scope='module')
def multi(shapes_path):
    set_seed(0)
    learn = vision_learner(shapes_dls(shapes_path, 'multi-label', bs=8), resnet18, pretrained=False)
    learn.fit(1, 1e-3)
    return learn

@pytest.fixture(scope='module')
def unet(shapes_path):
    set_seed(0)
    return unet_learner(shapes_dls(shapes_path, 'segmentation', bs=8), resnet18, pretrained=False)

@pytest.fixture(scope='module')
def regress(shapes_path):
    set_seed(0)
    return vision_learner(shapes_dls(shapes_path, 'regression', bs=8), resnet18, pretrained=False, n_out=1)

def valid_x(learn): return torch.cat([xb for xb, *_ in learn.dls.valid]).as_subclass(Tensor)

def test_kinds_recognised(multi, unet, regress):
    assert [task_kind(l).name for l in (multi, unet, regress)] == ['multi-label', 'segmentation', 'regression']

def test_multilabel_pred_is_fastai_decoding_and_each_map_is_captum(multi):
    grads = [None if p.grad is None else p.grad.clone() for p in multi.model.parameters()]
    cb = CAMCallback(layer='0.6')
    preds, targs, decoded = multi.get_preds(cbs=cb, with_decoded=True)
    assert torch.equal(cb.targets, decoded.bool())  # fastai's own threshold
    assert cb.maps.shape == (len(preds), 3, 4, 4)
    assert all((a is None and p.grad is None) or torch.equal(a, p.grad) for a, p in zip(grads, multi.model.parameters()))
    assert no_hooks(multi.model)
    x = valid_x(multi)
    multi.model.eval()
    gc = LayerGradCam(multi.model, multi.model.get_submodule('0.6'))
    for c in range(3):
        ref = gc.attribute(x, target=c, relu_attributions=True)[:, 0].detach()
        ref = ref * cb.targets[:, c, None, None]  # labels not explained have no map
        torch.testing.assert_close(cb.maps[:, c], ref, rtol=1e-4, atol=1e-6)

def test_multilabel_actual_all_and_one_label(multi):
    cb = CAMCallback(layer='0.6', target='actual')
    _, targs = multi.get_preds(cbs=cb)
    assert torch.equal(cb.targets, targs.bool())
    cb = CAMCallback(layer='0.6', target='all'); multi.get_preds(cbs=cb)
    assert cb.targets.all() and cb.maps.shape[1] == 3
    cb = CAMCallback(layer='0.6', target=1); multi.get_preds(cbs=cb)
    assert cb.maps.ndim == 3 and (cb.targets == 1).all()

def test_predictions_unchanged(multi, unet):
    for learn in (multi, unet):
        ref = learn.get_preds(with_loss=True)
        got = learn.get_preds(with_loss=True, cbs=CAMCallback())
        for a, b in zip(ref, got): assert torch.equal(a, b)

def test_multilabel_titles(multi):
    interp = CAMInterpretation.from_learner(multi, layer='0.6', target='all')
    fig = interp.plot_cam(idxs=[0, 1])
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert len(titles) == 6  # two items, three labels each
    vocab = list(interp.vocab)
    for j, i in enumerate([0, 1]):
        first = titles[3 * j].split('\n')
        assert first[0] == 'pred: ' + (', '.join(v for v, m in zip(vocab, interp.decoded[i]) if m) or '(none)')
        assert first[1] == 'actual: ' + ', '.join(v for v, m in zip(vocab, interp.targs[i]) if m)
        for c in range(3):
            assert titles[3 * j + c].split('\n')[-1] == f"{vocab[c]} ({interp.preds[i, c].item():.2f})"
    with pytest.raises(ValueError, match="needs one class per item"): interp.confusion_matrix()

def test_multilabel_bad_inputs(multi):
    with pytest.raises(ValueError, match=r"'circle' is not in dls.vocab \['ellipse', 'square', 'triangle'\]"):
        CAMInterpretation.from_learner(multi, target='circle')
    dl = multi.dls.test_dl(multi.dls.valid_ds.items.iloc[:3])  # no labels
    with pytest.raises(ValueError, match="target='actual' needs labels"):
        multi.get_preds(dl=dl, cbs=CAMCallback(target='actual'))
    assert no_hooks(multi.model) and torch.is_grad_enabled()

def last_decoder_block(model): return [m for m in model.layers if type(m).__name__ == 'UnetBlock'][-1]

def hand_seg_gradcam(model, x, c, region=None, layer=None):
    """Grad-CAM of class c's logits summed over its predicted pixels (or `region`), by hand, at `layer` (default: the
    last decoder block, fastcam's default)"""
    feats = []
    h = (layer or last_decoder_block(model)).register_forward_hook(lambda m, i, o: feats.append(o))
    model.eval()
    with torch.enable_grad():
        out = model(x); h.remove()
        r = (out.argmax(1) == c) if region is None else region
        g, = torch.autograd.grad((out[:, c] * r).sum(), feats[0])
    return (g.mean((-2, -1), keepdim=True) * feats[0]).sum(1).relu().detach()

def test_unet_default_layer_and_hand_score(unet):
    cb = CAMCallback()
    preds, targs, decoded = unet.get_preds(cbs=cb, with_decoded=True)
    n = len(preds)
    assert cb.maps.shape == (n, 4, 32, 32) and cb.layer_name == 'layers.7'  # the last decoder block, at half resolution
    present = torch.stack([torch.bincount(d.flatten(), minlength=4) > 0 for d in decoded])
    assert torch.equal(cb.targets, present)
    x = valid_x(unet)
    for c in range(4):
        torch.testing.assert_close(cb.maps[:, c], hand_seg_gradcam(unet.model, x, c) * present[:, c, None, None],
                                   rtol=1e-4, atol=1e-6)
    cb = CAMCallback(target='actual'); unet.get_preds(cbs=cb)
    y = torch.cat([yb for _, yb in unet.dls.valid]).as_subclass(Tensor)
    torch.testing.assert_close(cb.maps[:, 2], hand_seg_gradcam(unet.model, x, 2, y == 2) * (y == 2).flatten(1).any(1)[:, None, None],
                               rtol=1e-4, atol=1e-6)
    top = torch.zeros(len(x), 64, 64, dtype=torch.bool); top[:, :20] = True
    torch.testing.assert_close(cam_maps(unet.model, x, unet.model[0], 1, region=top),
                               hand_seg_gradcam(unet.model, x, 1, top, unet.model[0]), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match='one mask per item'): cam_maps(unet.model, x, unet.model[0], 1, region=top[:, :5])

def test_cam_predict_with_a_region(unet):
    "One item, one class, its logits summed over a given box (or mask) instead of its predicted pixels"
    item = unet.dls.valid_ds.items[0]
    x = first(unet.dls.test_dl([item]))[0].as_subclass(Tensor)
    top = torch.zeros(1, 64, 64, dtype=torch.bool); top[:, :20] = True
    want = hand_seg_gradcam(unet.model, x, 1, top)[0]
    hooks = lambda: sum(len(m._forward_hooks) for m in unet.model.modules())  # fastai's U-Net keeps its own
    before = hooks()
    for region in (torch.tensor([0, 0, 64, 20]), top[0]):
        _, _, m = unet.cam_predict(item, target=1, region=region)
        torch.testing.assert_close(m, want, rtol=1e-4, atol=1e-6)
    assert hooks() == before

def test_unet_plot_titles_and_outline(unet):
    interp = CAMInterpretation.from_learner(unet)
    fig = interp.plot_cam(idxs=[0])
    axs = [ax for ax in fig.axes if ax.images]
    codes = ['background', 'ellipse', 'square', 'triangle']
    classes = interp.cam.targets[0].nonzero()[:, 0].tolist()
    assert len(axs) == len(classes)
    for ax, c in zip(axs, classes):
        share = (interp.decoded[0] == c).float().mean().item()
        assert ax.get_title().split('\n')[-1] == f"{codes[c]} ({share:.0%})"
    assert any(ax.collections for ax in axs)  # outlines of the predicted regions

def test_regression_targets_and_titles(regress):
    interp = CAMInterpretation.from_learner(regress, layer='0.6')
    assert (interp.cam.targets == 0).all() and interp.vocab is None
    fig = interp.plot_cam(idxs=[0, 1])
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"{interp.preds[i, 0].item():.2f} / {interp.targs[i].item():.2f}" for i in (0, 1)]
    with pytest.raises(Exception, match="does not apply to a regression learner"):
        regress.get_preds(cbs=CAMCallback(target='all'))
    with pytest.raises(ValueError, match="no class names"): CAMInterpretation.from_learner(regress, target='big')

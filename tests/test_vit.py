"""Vision transformers (timm, random weights): default layer, token layout, exactness against independent
computations (a hand-written hook + autograd.grad, and pytorch-grad-cam with its reshape_transform), lifecycle,
pictures, and the errors for tokens that do not fold to a grid."""
import matplotlib; matplotlib.use('Agg')
import pytest, torch
import timm
from fastai.vision.all import ImageDataLoaders, get_image_files, Resize, vision_learner, set_seed
from fastcam.hooks import cam_maps
from fastcam.core import TokenGrid, channels_last
from fastcam.callback import CAMCallback
from fastcam.kinds import body_layer
from fastcam.interpret import CAMInterpretation
import fastcam.trust  # noqa: F401 (cam_report, sanity_checks)
from fastcam.data import is_cat
from conftest import Boom, no_hooks
from conftest import panel, hot_top_left, assert_top_left_hot, hand_curve_auc

ARCHS = {'vit_tiny_patch16_224': (1, 14), 'deit_tiny_distilled_patch16_224': (2, 14), 'eva02_tiny_patch14_224': (1, 16)}

@pytest.fixture(scope='module')
def dls224(pets_path):
    return ImageDataLoaders.from_name_func(pets_path, get_image_files(pets_path), valid_pct=0.25, seed=21,
                                           label_func=is_cat, item_tfms=Resize(224), bs=8, num_workers=0)

@pytest.fixture(scope='module', params=list(ARCHS))
def vit_learn(request, dls224):
    set_seed(0)
    return request.param, vision_learner(dls224, request.param, pretrained=False)

def hand_gradcam(model, layer, x, target, n_prefix, grid):
    "Grad-CAM written out: hook the layer, autograd.grad of the class scores, drop the prefix tokens, fold the grid"
    acts = []
    h = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        with torch.enable_grad():
            model.eval()
            out = model(x)
            g, = torch.autograd.grad(out[torch.arange(len(x)), target].sum(), acts[0])
    finally: h.remove()
    a, g = acts[0][:, n_prefix:].detach(), g[:, n_prefix:]
    return (g.mean(1, keepdim=True) * a).sum(-1).relu().reshape(len(x), grid, grid)

def rel_close(a, b, tol=1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert ((a - b).abs().amax() / b.abs().amax().clamp_min(1e-12)) <= tol

def test_default_layer_shapes_not_blank(vit_learn):
    arch, learn = vit_learn
    n_prefix, grid = ARCHS[arch]
    assert body_layer(learn.model) is learn.model[0].model.blocks[-1].norm1
    learn.add_cb(cam := CAMCallback())
    try: preds, _ = learn.get_preds()
    finally: learn.remove_cb(CAMCallback)
    n = len(learn.dls.valid_ds)
    assert cam.maps.shape == (n, grid, grid) and cam.maps.abs().sum() > 0
    assert torch.equal(cam.targets, preds.argmax(1))
    cb = CAMCallback(target='all')
    learn.get_preds(cbs=cb)
    assert (cb.maps.flatten(2).amax(2) > 0).any(1).all()  # every item has a visible map for some class

def test_block_output_is_blank_with_class_token_pooling(dls224):
    "Why the default is the last block's norm: with class-token pooling its *output* gets zero gradient at the patches"
    learn = vision_learner(dls224, 'vit_tiny_patch16_224', pretrained=False)
    cb = CAMCallback(layer=learn.model[0].model.blocks[-1], target='all', method='hirescam')
    learn.get_preds(cbs=cb)
    assert cb.maps.abs().sum() == 0

def test_gradcam_equals_hand_computation(vit_learn):
    arch, learn = vit_learn
    n_prefix, grid = ARCHS[arch]
    x = learn.dls.valid.one_batch()[0].as_subclass(torch.Tensor)
    layer = learn.model[0].model.blocks[-1].norm1
    for target in (0, 1):
        t = torch.full((len(x),), target)
        rel_close(cam_maps(learn.model, x, layer, target), hand_gradcam(learn.model, layer, x, t, n_prefix, grid))
    cb = CAMCallback(method='gradcam', target=1)
    learn.get_preds(cbs=cb)
    xs = torch.cat([xb for xb, _ in learn.dls.valid]).as_subclass(torch.Tensor)
    rel_close(cb.maps, hand_gradcam(learn.model, layer, xs, torch.ones(len(xs), dtype=torch.long), n_prefix, grid))
    assert all(p.grad is None for p in learn.model.parameters())

def test_gradcam_equals_pytorch_grad_cam():
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    set_seed(1)
    model = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=3).eval()
    x = torch.randn(2, 3, 224, 224)
    def reshape_transform(t): return t[:, 1:].reshape(t.shape[0], 14, 14, t.shape[2]).permute(0, 3, 1, 2)
    layer = model.blocks[-1].norm1
    for c in (0, 2):
        with pgc.GradCAM(model, [layer], reshape_transform=reshape_transform) as gc:
            gc(x, [ClassifierOutputTarget(c)] * len(x))  # its hooks keep the reshaped activations and gradients
            a, g = gc.activations_and_grads.activations[0], gc.activations_and_grads.gradients[0]
            ref = torch.from_numpy(gc.get_cam_image(x, layer, None, a.numpy(), g.numpy())).relu()  # its raw map, unscaled
        rel_close(cam_maps(model, x, 'blocks.11.norm1', c), ref.float())
    assert no_hooks(model)

def test_interpretation_plot_and_alignment(vit_learn):
    "The patch grid upsampled over the image, aligned as the CNN maps are: a hot top-left patch block lands top-left"
    arch, learn = vit_learn
    _, grid = ARCHS[arch]
    interp = CAMInterpretation.from_learner(learn)
    assert interp.maps.shape[-2:] == (grid, grid)
    real = interp.cam.maps
    interp.cam.maps = hot_top_left(grid, grid).expand(len(real), grid, grid).clone()
    try:
        fig = interp.plot_cam(k=2)
        axs = [ax for ax in fig.axes if ax.images]
        assert len(axs) == 2
        for ax in axs: assert_top_left_hot(panel(fig, ax))
    finally: interp.cam.maps = real
    label, probs, m = learn.show_cam(learn.dls.valid_ds.items[0])
    assert m.shape == (grid, grid)

def test_exception_mid_pass_leaves_no_hook(dls224):
    learn = vision_learner(dls224, 'deit_tiny_distilled_patch16_224', pretrained=False)
    learn.add_cb(CAMCallback())
    try:
        with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=Boom())
        assert torch.is_grad_enabled() and no_hooks(learn.model)
    finally: learn.remove_cb(CAMCallback)

def test_token_count_that_does_not_fold():
    "A dynamic-size ViT at 160 px has 1 + 10x10 tokens, not the 14x14 its patch_embed reports: a clear error, and the fix"
    model = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=2, dynamic_img_size=True).eval()
    x = torch.randn(1, 3, 160, 160)
    with pytest.raises(ValueError, match=r"does not fold to ViT tokens.*reshape="):
        cam_maps(model, x, 'blocks.11.norm1')
    assert no_hooks(model)
    assert cam_maps(model, x, 'blocks.11.norm1', reshape=TokenGrid(1, (10, 10))).shape == (1, 10, 10)
    with pytest.raises(ValueError, match=r"do not fold to its grid 14×14"): cam_maps(model, x, None, 0, 'rollout')
    assert no_hooks(model)

def test_channels_last_swin_stage():
    "timm's Swin says output_fmt='NHWC': a stage's (bs, h, w, c) output is mapped with no reshape= given"
    set_seed(2)
    model = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=2).eval()
    x = torch.randn(1, 3, 224, 224)
    layer = model.layers[-1]
    acts = []
    h = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    with torch.enable_grad():
        out = model(x)
        g, = torch.autograd.grad(out[:, 1].sum(), acts[0])
    h.remove()
    a = acts[0].detach()  # (1, 7, 7, 768)
    ref = (g.mean((1, 2), keepdim=True) * a).sum(-1).relu()
    rel_close(cam_maps(model, x, 'layers.3', 1), ref)
    rel_close(cam_maps(model, x, 'layers.3', 1, reshape=channels_last), ref)

def test_cam_report_and_every_method_on_vit(dls224):
    "The metrics and every method run on ViT maps; plain CAM is refused with its reason (the head is not pool → linear)"
    learn = vision_learner(dls224, 'vit_tiny_patch16_224', pretrained=False)
    interp = CAMInterpretation.from_learner(learn)
    methods = ('gradcam', 'hirescam', 'eigencam', 'cam')
    df = interp.cam_report(methods=methods, max_items=4, steps=4, baseline='zero', road=False).set_index('method')
    assert sorted(df.index) == sorted(methods)
    xs = torch.cat([b[0] for b in learn.dls.test_dl(interp.dl.items[:4])]).as_subclass(torch.Tensor)
    model = learn.model.eval()
    with torch.no_grad(): t = model(xs).argmax(1)
    layer = learn.model[0].model.blocks[-1].norm1
    maps = hand_gradcam(model, layer, xs, t, 1, 14)  # Grad-CAM by hand, then its curves by hand
    for mode in ('deletion', 'insertion'):
        hand = hand_curve_auc(model, xs, maps, t, mode, 4).mean().item()
        assert df.loc['gradcam', f'{mode}_auc'] == pytest.approx(hand, abs=1e-5)
    assert 'not applicable' in df.loc['cam', 'verdict'] and df.loc['eigencam', 'verdict'].startswith('fails')
    x = learn.dls.valid.one_batch()[0][:2].as_subclass(torch.Tensor)
    assert cam_maps(learn.model, x, body_layer(learn.model), method='scorecam', batch_size=256).shape == (2, 14, 14)

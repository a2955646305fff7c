"""Attention methods (rollout, gradrollout, legrad) against independent computations: torchcam's LeGrad on a
torchvision ViT, and rollout and Chefer's rule written out from attention probabilities computed here from each
block's input; the model left exactly as it was; inside fastai's get_preds."""
import copy, pytest, torch
from torch import nn
from torchvision.models import vit_b_16
from fastcam.hooks import cam_maps
from fastcam.core import normalize_maps
from fastcam.vit import AttentionHook
from fastcam.methods import ATTENTION_METHODS
from conftest import no_hooks

import timm

@pytest.fixture(scope='module')
def tvit():
    torch.manual_seed(0)
    m = vit_b_16(weights=None).eval()
    nn.init.normal_(m.heads.head.weight, std=0.02)  # (torchvision starts the head at zero: every gradient would be)
    return m

def test_legrad_equals_torchcam(tvit):
    import torchcam.methods as tc
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    blocks = list(tvit.encoder.layers)[-4:]
    ours = normalize_maps(cam_maps(tvit, x, blocks, torch.tensor([3, 7]), 'legrad'))
    assert (ours.flatten(1).amax(1) == 1).all()  # not blank
    model = copy.deepcopy(tvit)
    with tc.LeGrad(model, list(model.encoder.layers)[-4:]) as cam:
        theirs = cam([3, 7], model(x))[0]
    assert ours.shape == theirs.shape == (2, 14, 14)
    assert (ours - theirs).abs().amax() <= 1e-4
    assert no_hooks(tvit) and all(p.grad is None for p in tvit.parameters())

@pytest.fixture(scope='module')
def vit():
    torch.manual_seed(0)
    return timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=3, img_size=(64, 48)).eval()

def probs_by_hand(vit, x):
    "Each block's attention probabilities, computed here from the block's first norm: softmax(q·kᵀ·scale) per head"
    ins = []
    hs = [b.norm1.register_forward_hook(lambda m, i, o: ins.append(o)) for b in vit.blocks]
    try:
        with torch.no_grad(): vit(x)
    finally:
        for h in hs: h.remove()
    probs = []
    for b, a in zip(vit.blocks, ins):
        B, N, _ = a.shape
        q, k, _ = b.attn.qkv(a).reshape(B, N, 3, b.attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        probs.append((q @ k.transpose(-2, -1) * b.attn.scale).softmax(-1).detach())
    return probs

def rollout_by_hand(probs, n_prefix=1):
    R = torch.eye(probs[0].shape[-1]).expand(len(probs[0]), -1, -1)
    for P in probs:
        A = P.mean(1) + torch.eye(P.shape[-1])
        R = (A / A.sum(-1, keepdim=True)) @ R
    return R[:, 0, n_prefix:]

def test_rollout_equals_a_hand_written_rollout(vit):
    x = torch.randn(3, 3, 64, 48, generator=torch.Generator().manual_seed(2))
    ours = cam_maps(vit, x, None, 'pred', 'rollout')
    ref = rollout_by_hand(probs_by_hand(vit, x)).reshape(3, 4, 3)
    assert ours.shape == (3, 4, 3)  # a non-square grid, no reshape=
    assert (ours - ref).abs().amax() <= 1e-5

def gradrollout_by_hand(vit, x, t, which=None):
    "Chefer's rule from probabilities kept on the whole graph of an unfused copy of the model"
    model = copy.deepcopy(vit)
    got = []
    for i, b in enumerate(model.blocks):
        b.attn.fused_attn = False
        if which is None or i in which: b.attn.attn_drop.register_forward_hook(lambda m, i, o: got.append(o))
    with torch.enable_grad():
        out = model(x)
        G = torch.autograd.grad(out.gather(1, t[:, None]).sum(), got)
    R = torch.eye(got[0].shape[-1]).repeat(len(x), 1, 1)
    for P, g in zip(got, G): R = R + torch.bmm((g * P).clamp(min=0).mean(1), R)
    return R[:, 0, 1:].detach()

@pytest.mark.parametrize('which', [None, [2, 5]])  # every block; two, with blocks between them
def test_gradrollout_equals_chefers_rule(vit, which):
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([2, 1])
    layer = None if which is None else [vit.blocks[i] for i in which]
    ours = cam_maps(vit, x, layer, t, 'gradrollout')
    ref = gradrollout_by_hand(vit, x, t, which).relu().reshape(2, 4, 3)
    assert (ours - ref).abs().amax() <= 1e-5 * ref.abs().amax().clamp_min(1)

@pytest.mark.parametrize('method', list(ATTENTION_METHODS))
def test_model_as_it_was(vit, method):
    x = torch.randn(2, 3, 64, 48)
    flags = [b.attn.fused_attn for b in vit.blocks]
    req = [p.requires_grad for p in vit.parameters()]
    with torch.no_grad(): plain = vit(x)
    with AttentionHook(vit, None, method) as hook:
        with torch.no_grad():
            out = vit(x)
            hook.compute(out, 'pred')
    assert torch.equal(out, plain)  # the fused value, bit for bit
    assert [b.attn.fused_attn for b in vit.blocks] == flags and no_hooks(vit) and torch.is_grad_enabled()
    assert all(p.grad is None for p in vit.parameters()) and [p.requires_grad for p in vit.parameters()] == req

def test_errors(vit):
    with pytest.raises(ValueError, match='takes blocks of the ViT'):
        cam_maps(vit, torch.randn(1, 3, 64, 48), vit.head, 0, 'rollout')
    with pytest.raises(ValueError, match='takes no smooth='):
        cam_maps(vit, torch.randn(1, 3, 64, 48), None, 0, 'rollout', smooth='eigen')
    swin = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=2)
    with pytest.raises(ValueError, match='windowed attention'):
        cam_maps(swin, torch.randn(1, 3, 224, 224), None, 0, 'rollout')

def hand_folded(model, layer, x, target, grid):
    """`Σ_c g·a` per patch by hand at a token layer, with no ReLU (a random model's maps may be all negative): hook its
    output, autograd.grad of the class scores, drop the tokens before the `grid`'s patches (however many the model
    puts first), fold the rest to the grid"""
    acts = []
    h = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        with torch.enable_grad():
            out = model.eval()(x)
            g, = torch.autograd.grad(out[:, target].sum(), acts[0])
    finally: h.remove()
    a = acts[0].detach()
    n_prefix = a.shape[1] - grid[0] * grid[1]
    return (g[:, n_prefix:] * a[:, n_prefix:]).sum(-1).reshape(len(x), *grid), n_prefix

def relative_close(a, b):
    assert a.shape == b.shape and b.abs().amax() > 0, (a.shape, b.shape)
    assert (a - b).abs().amax() <= 1e-4 * b.abs().amax(), ((a - b).abs().amax() / b.abs().amax()).item()

@pytest.fixture
def unrelued():
    "HiResCAM with no ReLU, registered for these tests"
    from fastcam.methods import register_method, unregister_method, CAMMethod
    register_method(CAMMethod('unrelued', weigh=lambda A, G, W: G * A, relu=False))
    yield 'unrelued'
    unregister_method('unrelued')

# each zoo, and the prefix tokens it puts before the patches: class, distillation and register tokens
ZOOS = {'vit_tiny_patch16_224': dict(img_size=(64, 48)), 'deit_tiny_distilled_patch16_224': dict(img_size=64),
        'vit_small_patch14_reg4_dinov2': dict(img_size=56, depth=2), 'eva02_tiny_patch14_224': dict(img_size=56),
        'beit_base_patch16_224': dict(img_size=64, depth=2, embed_dim=96, num_heads=2)}
PREFIX = {'vit_tiny_patch16_224': 1, 'deit_tiny_distilled_patch16_224': 2, 'vit_small_patch14_reg4_dinov2': 5,
          'eva02_tiny_patch14_224': 1, 'beit_base_patch16_224': 1}

@pytest.mark.parametrize('arch', list(ZOOS))
def test_every_zoo_inside_get_preds(pets_path, arch, unrelued):
    "Class, distillation and register tokens, rotary and relative position biases, a non-square grid: no reshape="
    from fastai.vision.all import ImageDataLoaders, get_image_files, Resize, vision_learner, set_seed
    from fastcam.callback import CAMCallback
    from fastcam.data import is_cat
    size = ZOOS[arch]['img_size']
    dls = ImageDataLoaders.from_name_func(pets_path, get_image_files(pets_path)[:16], valid_pct=0.5, seed=0,
                                          label_func=is_cat, item_tfms=Resize(size), bs=4, num_workers=0)
    set_seed(0)
    learn = vision_learner(dls, arch, pretrained=False, **ZOOS[arch])
    vit = learn.model[0].model
    grid = tuple(vit.patch_embed.grid_size)
    plain, _ = learn.get_preds()
    for m in ATTENTION_METHODS:
        cb = CAMCallback(method=m)
        preds, _ = learn.get_preds(cbs=cb)
        assert torch.equal(preds, plain), m  # predictions bit for bit
        assert cb.maps.shape == (len(dls.valid_ds), *grid) and (cb.maps.flatten(1).amax(1) > 0).all(), m
        assert len(cb.layer_name) == len(vit.blocks)
    # a layer method: each map is the hooked tokens folded by hand, the prefix tokens dropped
    cb = CAMCallback(layer=vit.blocks[0].norm1, method=unrelued, target=1)
    learn.get_preds(cbs=cb)
    xs = torch.cat([xb for xb, _ in learn.dls.valid]).as_subclass(torch.Tensor)
    ref, n_prefix = hand_folded(learn.model, vit.blocks[0].norm1, xs, 1, grid)
    assert n_prefix == PREFIX[arch]
    relative_close(cb.maps, ref)
    assert no_hooks(learn.model)

def test_an_exception_leaves_the_learner_as_it_was(pets_path):
    from fastai.vision.all import ImageDataLoaders, get_image_files, Resize, vision_learner, set_seed
    from fastcam.callback import CAMCallback
    from fastcam.data import is_cat
    from conftest import Boom
    dls = ImageDataLoaders.from_name_func(pets_path, get_image_files(pets_path)[:8], valid_pct=0.5, seed=0,
                                          label_func=is_cat, item_tfms=Resize(32), bs=4, num_workers=0)
    set_seed(0)
    learn = vision_learner(dls, 'vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=8)
    vit = learn.model[0].model
    flags = [b.attn.fused_attn for b in vit.blocks]
    for m in ATTENTION_METHODS:
        with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=[CAMCallback(method=m), Boom()])
        assert no_hooks(learn.model) and torch.is_grad_enabled() and [b.attn.fused_attn for b in vit.blocks] == flags
    learn.add_cb(CAMCallback(method='gradrollout'))
    learn.export(pets_path / 'vit.pkl')  # with the callback attached

def test_layer_methods_fold_a_torchvision_vit_with_no_reshape(tvit, unrelued):
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    layer = tvit.encoder.layers[-1].ln_1
    grid = (tvit.image_size // tvit.patch_size,) * 2  # torchvision's patch embedding: a conv of stride patch_size
    ref, n_prefix = hand_folded(tvit, layer, x, 3, grid)
    assert n_prefix == 1
    relative_close(cam_maps(tvit, x, layer, 3, unrelued), ref)

def test_swin(pets_path):
    "fastai's vision_learner cannot run a Swin (its head pools NCHW), and says what would; timm's own model folds"
    from fastai.vision.all import ImageDataLoaders, get_image_files, Resize, vision_learner, Learner
    from fastai.callback.progress import ProgressCallback
    from fastcam.callback import CAMCallback
    from fastcam.data import is_cat
    dls = ImageDataLoaders.from_name_func(pets_path, get_image_files(pets_path)[:8], valid_pct=0.5, seed=0,
                                          label_func=is_cat, item_tfms=Resize(64), bs=4, num_workers=0)
    kw = dict(img_size=64, window_size=4)
    learn = vision_learner(dls, 'swin_tiny_patch4_window7_224', pretrained=False, **kw)
    with pytest.raises(ValueError, match='channels-last'): learn.get_preds(cbs=CAMCallback())
    learn = Learner(dls, timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=2, **kw))
    learn.remove_cb(ProgressCallback)
    for layer, grid in ((None, 2), ('layers.2', 4)):
        learn.get_preds(cbs=(cb := CAMCallback(layer=layer)))
        assert cb.maps.shape == (4, grid, grid)
    with pytest.raises(ValueError, match='windowed attention'): learn.get_preds(cbs=CAMCallback(method='rollout'))

def test_torchvision_vit_in_a_learner(pets_path):
    "fastai's vision_learner cannot build a torchvision ViT (its cut finds no pooling); a Learner on one works as is"
    from fastai.vision.all import ImageDataLoaders, get_image_files, Resize, Learner
    from fastai.callback.progress import ProgressCallback
    from torchvision.models import VisionTransformer
    from fastcam.callback import CAMCallback
    from fastcam.data import is_cat
    dls = ImageDataLoaders.from_name_func(pets_path, get_image_files(pets_path)[:8], valid_pct=0.5, seed=0,
                                          label_func=is_cat, item_tfms=Resize(32), bs=4, num_workers=0)
    torch.manual_seed(0)
    net = VisionTransformer(32, 8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=2)
    nn.init.normal_(net.heads.head.weight, std=0.02)
    learn = Learner(dls, net)
    learn.remove_cb(ProgressCallback)
    plain, _ = learn.get_preds()
    for m in (None, *ATTENTION_METHODS):
        preds, _ = learn.get_preds(cbs=(cb := CAMCallback(method=m)))
        assert torch.equal(preds, plain) and cb.maps.shape == (4, 4, 4), m
    assert cb.method_used == 'legrad' and no_hooks(net)
    # A layer method records the graph from its layer on, and with grad enabled nn.MultiheadAttention leaves its fused
    # inference path: the same predictions to rounding, not bit for bit (the attention methods keep the fused value)
    preds, _ = learn.get_preds(cbs=(cb := CAMCallback(method='gradcam')))
    assert torch.allclose(preds, plain, atol=1e-6) and cb.maps.shape == (4, 4, 4)

def attention_maps(model, x, layer, t, method, memory):
    "`cam_maps`'s attention path, with the hook's memory path named (`compute` in the forward's grad mode)"
    with AttentionHook(model, layer, method, memory=memory) as hook:
        with torch.no_grad(): maps = hook.compute(model(x), t)[0]
    assert hook.fast == (memory == 'fast') and torch.is_grad_enabled()
    return maps

def test_lean_legrad_equals_torchcam(tvit):
    "The lean replay (one block's graph at a time) against torchcam's LeGrad, as the fast path is above"
    import torchcam.methods as tc
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    ours = normalize_maps(attention_maps(tvit, x, list(tvit.encoder.layers)[-4:], torch.tensor([3, 7]), 'legrad', 'lean'))
    model = copy.deepcopy(tvit)
    with tc.LeGrad(model, list(model.encoder.layers)[-4:]) as cam:
        theirs = cam([3, 7], model(x))[0]
    assert (ours - theirs).abs().amax() <= 1e-4

@pytest.mark.parametrize('which', [None, [2, 5]])
def test_lean_gradrollout_equals_chefers_rule(vit, which):
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([2, 1])
    layer = None if which is None else [vit.blocks[i] for i in which]
    ours = attention_maps(vit, x, layer, t, 'gradrollout', 'lean')
    ref = gradrollout_by_hand(vit, x, t, which).relu().reshape(2, 4, 3)
    assert (ours - ref).abs().amax() <= 1e-5 * ref.abs().amax().clamp_min(1)

def test_auto_memory_keeps_the_graph_where_it_fits(vit, monkeypatch):
    "`memory='auto'`: fast where `graph_bytes` is at most `MEMORY_SHARE` of the free memory, else lean; same maps"
    import fastcam.vit as fv
    x, t = torch.randn(2, 3, 64, 48), torch.tensor([0, 1])
    got = {}
    for share in (fv.MEMORY_SHARE, 0.):
        monkeypatch.setattr(fv, 'MEMORY_SHARE', share)
        with AttentionHook(vit, None, 'legrad') as hook:
            with torch.no_grad(): got[hook.fast is True] = hook.compute(vit(x), t)[0]
            assert hook.fast == (share > 0) and torch.is_grad_enabled()
    assert (got[True] - got[False]).abs().amax() <= 1e-5 * got[False].abs().amax()

@pytest.mark.parametrize('method', ['gradrollout', 'legrad'])
def test_hf_vit_fast_equals_lean(method):
    "An HF ViT (its attention's probabilities and values given to the fast path): both paths, the same maps"
    from transformers import ViTConfig, ViTForImageClassification
    from fastcam.core import HFClassifier
    torch.manual_seed(0)
    hf = HFClassifier(ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=16,
        num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, num_labels=3)).eval())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(): plain = hf(x)
    fast, lean = (attention_maps(hf, x, None, 'pred', method, m) for m in ('fast', 'lean'))
    with torch.no_grad(): assert torch.equal(hf(x), plain)
    assert fast.abs().amax() > 0 and (fast - lean).abs().amax() <= 1e-5 * lean.abs().amax()

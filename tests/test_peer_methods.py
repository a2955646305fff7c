"""Every image method against pytorch-grad-cam's or torchcam's own class on the same model, layer, input and class:
equal to 1e-4 after each library's normalisation (the stochastic ones with the noise shared)."""
import copy, pytest, torch
from fastai.vision.all import create_vision_model, resnet18, set_seed
from fastcam.hooks import cam_maps
from fastcam.core import normalize_maps, upsample_maps, cam_head, METHOD_RNG
from fastcam.methods import get_method
import pytorch_grad_cam as pgc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

SIZE, LAYER = 128, '0.6'  # resnet18's layer3: 8×8 maps for 128 px inputs

@pytest.fixture(scope='module')
def net():
    set_seed(3)
    return create_vision_model(resnet18, 3, pretrained=False).eval()

@pytest.fixture(scope='module')
def x():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, SIZE, SIZE, generator=g)

@pytest.fixture(scope='module')
def small(x):
    "Half the size, for the methods that run the model once per channel: 4×4 maps"
    return x[..., ::2, ::2].contiguous()

def ours_like_pgc(net, x, method, target, **kw):
    "Our raw maps as pytorch-grad-cam shows them: upsampled to the input, then min-max scaled"
    return normalize_maps(upsample_maps(cam_maps(net, x, LAYER, target, method, **kw), x.shape[-2:]))

def theirs(cls, net, x, target, **kw):
    model = copy.deepcopy(net)  # pytorch-grad-cam writes parameter .grad and may swap modules
    with cls(model=model, target_layers=[model.get_submodule(LAYER)], **kw) as cam:
        return torch.from_numpy(cam(x, targets=[ClassifierOutputTarget(int(c)) for c in target]))

def close(a, b, tol=1e-4):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert (a - b).abs().amax() <= tol, (a - b).abs().amax().item()

PGC = {'gradcam': 'GradCAM', 'hirescam': 'HiResCAM', 'gradcam++': 'GradCAMPlusPlus', 'xgradcam': 'XGradCAM',
       'layercam': 'LayerCAM', 'gradcamelementwise': 'GradCAMElementWise', 'fem': 'FEM', 'ablationcam': 'AblationCAM',
       'segeigencam': 'SegEigenCAM'}

@pytest.mark.parametrize('method', list(PGC))
def test_equals_pytorch_grad_cam(net, x, small, method):
    if get_method(method).rerun is not None: x = small
    t = torch.tensor([0, 2])
    if method == 'gradcam++':  # pytorch-grad-cam adds 1e-6 to alpha's denominator (the paper does not): with the
        net = copy.deepcopy(net)  # gradients of a random model (~1e-3) it matters, with the logits ×1e4 it does not
        with torch.no_grad(): net[1][-1].weight.mul_(1e4)
    close(ours_like_pgc(net, x, method, t), theirs(getattr(pgc, PGC[method]), net, x, t))
    assert all(p.grad is None for p in net.parameters()) and not any(m._forward_hooks for m in net.modules())

SIGNLESS = {'eigencam': 'EigenCAM', 'eigengradcam': 'EigenGradCAM', 'kpcacam': 'KPCA_CAM'}

@pytest.mark.parametrize('method', list(SIGNLESS))
def test_projections_equal_pytorch_grad_cam_up_to_sign(net, x, method):
    "An SVD's (and a kernel PCA's) sign is arbitrary: pytorch-grad-cam keeps whichever LAPACK gives, fastcam fixes it"
    t = torch.tensor([1, 1])
    ref = theirs(getattr(pgc, SIGNLESS[method]), net, x, t)
    rec = get_method(method)  # the signed projection, flipped
    from fastcam.methods import register_method, unregister_method, CAMMethod
    register_method(CAMMethod('flipped', lambda A, G, W: -rec.weigh(A, G, W), grads=rec.grads))
    try: flipped = ours_like_pgc(net, x, 'flipped', t)
    finally: unregister_method('flipped')
    ours = ours_like_pgc(net, x, method, t)
    for i in range(len(x)):
        err = min((ours[i] - ref[i]).abs().amax(), (flipped[i] - ref[i]).abs().amax())
        assert err <= 1e-4, (method, i, err.item())

def test_ablation_ratio_as_pytorch_grad_cam(net, small):
    x = small
    from fastcam.methods import register_method, unregister_method, CAMMethod, _cam
    from fastcam.perturb import ablation_weights
    t = torch.tensor([2, 0])
    register_method(CAMMethod('ablation_half', _cam, grads=False, rerun=ablation_weights(0.3)))
    try: ours = ours_like_pgc(net, x, 'ablation_half', t, batch_size=7)
    finally: unregister_method('ablation_half')
    close(ours, theirs(pgc.AblationCAM, net, x, t, ratio_channels_to_ablate=0.3))
    assert not (ours == ours_like_pgc(net, x, 'ablationcam', t)).all()  # fewer channels: another map

def test_ablation_at_a_token_layout_equals_a_hand_ablation():
    "The swapped output goes back to the layer's own layout: a ViT's tokens, class token kept"
    import timm
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=3, img_size=32).eval()
    xv = torch.randn(2, 3, 32, 32)
    got = cam_maps(vit, xv, 'blocks.0.norm1', 1, 'ablationcam', batch_size=40)
    acts = []
    h = vit.blocks[0].norm1.register_forward_hook(lambda m, i, o: acts.append(o))
    with torch.no_grad(): base = vit(xv)[:, 1]
    h.remove()
    a = acts[0]  # (2, 1 + 4, 192)
    w = torch.zeros(2, 192)
    for i in range(2):
        for k in range(192):
            ab = a[i:i + 1].clone(); ab[:, 1:, k] = a[i, 1:].amin() - 1e7 if a[i, 1:].amin() != 0 else 0
            hh = vit.blocks[0].norm1.register_forward_hook(lambda m, inp, o, ab=ab: ab)
            with torch.no_grad(): w[i, k] = (base[i] - vit(xv[i:i + 1])[0, 1]) / base[i]
            hh.remove()
    want = (w[:, :, None] * a[:, 1:].transpose(1, 2)).sum(1).relu().view(2, 2, 2)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)

def test_randomcam_with_the_same_draws(net, x, monkeypatch):
    t = torch.tensor([0, 1])
    METHOD_RNG.manual_seed(7)
    ours = ours_like_pgc(net, x, 'randomcam', t)
    g = torch.Generator().manual_seed(7)
    w = (2 * torch.rand(2, 256, generator=g) - 1).numpy()  # the same draws, handed to pytorch-grad-cam
    monkeypatch.setattr(pgc.random_cam.np.random, 'uniform', lambda *a, **k: w)
    close(ours, theirs(pgc.RandomCAM, net, x, t))

def test_guided_backprop_equals_pytorch_grad_cam(net, x):
    from pytorch_grad_cam import GuidedBackpropReLUModel
    model = copy.deepcopy(net)
    for i, c in enumerate([2, 0]):
        gb = torch.from_numpy(GuidedBackpropReLUModel(model, device='cpu')(x[i:i + 1].clone(), c)).abs().amax(-1)
        mine = cam_maps(net, x[i:i + 1], LAYER, c, 'guidedbackprop')[0]
        torch.testing.assert_close(mine, gb, rtol=1e-4, atol=1e-7)
        ggc = cam_maps(net, x[i:i + 1], LAYER, c, 'guidedgradcam')[0]
        cam = theirs(pgc.GradCAM, net, x[i:i + 1], [c])[0]  # normalised Grad-CAM at the input's size
        close(normalize_maps(ggc), normalize_maps(cam * gb), 1e-4)
    assert all(isinstance(m, torch.nn.ReLU) and m.inplace for m in net.modules() if type(m).__name__ == 'ReLU')
    assert not any(m._forward_hooks for m in net.modules()) and all(p.grad is None for p in net.parameters())

def test_guided_backprop_equals_captum(net, x):
    """captum's GuidedBackprop (on a copy whose ReLUs are not in place, which captum's hooks need): the gradient's
    largest absolute channel"""
    from captum.attr import GuidedBackprop
    model = copy.deepcopy(net)
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU): m.inplace = False
    t = torch.tensor([2, 0])
    ref = GuidedBackprop(model).attribute(x.clone(), target=t).detach().abs().amax(1)
    ours = torch.cat([cam_maps(net, x[i:i + 1], LAYER, int(c), 'guidedbackprop') for i, c in enumerate(t)])
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-7)

@pytest.fixture(scope='module')
def cam_net():
    "resnet18 with a pool → linear head (`cam_head`), which plain CAM needs"
    set_seed(3)
    return create_vision_model(resnet18, 3, pretrained=False, custom_head=cam_head(512, 3)).eval()

def torchcam_maps(name, net, layer, x, t, **kw):
    "torchcam's maps (each min-max scaled at the layer's size) from its class `name`, on a copy of `net`"
    import torchcam.methods as tc
    model = copy.deepcopy(net)
    with getattr(tc, name)(model, layer, input_shape=tuple(x.shape[1:]), **kw) as cam:
        with torch.set_grad_enabled(name not in ('CAM', 'ScoreCAM', 'SSCAM', 'ISCAM')): out = model(x)
        return cam(t.tolist(), out)[0]

def hand_gradients(net, layer, x, t):
    "The layer's activation and the gradient of each item's class score there, by a hook and autograd.grad"
    acts = []
    h = net.get_submodule(layer).register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        with torch.enable_grad(): out = net(x)
    finally: h.remove()
    g, = torch.autograd.grad(out[torch.arange(len(x)), t].sum(), acts[0])
    return acts[0].detach(), g

ONE_PASS_TC = {'cam': 'CAM', 'gradcam': 'GradCAM', 'gradcam++': 'GradCAMpp', 'xgradcam': 'XGradCAM', 'layercam': 'LayerCAM'}
TORCHCAM = {'iscam': ('ISCAM', dict(num_samples=3)), 'sscam': ('SSCAM', dict(num_samples=2))}

@pytest.mark.parametrize('method', [*ONE_PASS_TC, *TORCHCAM])
def test_equals_torchcam(net, cam_net, x, small, method):
    """torchcam's class on the same model, layer, input and class. Grad-CAM++: torchcam's alpha is never divided (its
    `div_` acts on a boolean-masked copy), so its weights are Σ g²·ReLU(g): its map is that, worked out by hand, and
    fastcam's (the paper's alpha, as pytorch-grad-cam) differs. IS-CAM exactly; SS-CAM with the same noise (torchcam
    draws from torch's generator, fastcam from METHOD_RNG)"""
    if method in TORCHCAM: return rerun_equals_torchcam(net, small, method)
    t = torch.tensor([0, 2])
    model, layer = (cam_net, '0') if method == 'cam' else (net, LAYER)
    ref = torchcam_maps(ONE_PASS_TC[method], model, layer, x, t, **(dict(fc_layer='1.2') if method == 'cam' else {}))
    ours = normalize_maps(cam_maps(model, x, layer, t, method))
    if method == 'gradcam++':
        A, g = hand_gradients(net, layer, x, t)
        close(normalize_maps(((g ** 2 * g.relu()).sum((2, 3), keepdim=True) * A).sum(1).relu()), ref)
        assert (ours - ref).abs().amax() > 0.01
    else: close(ours, ref)

def rerun_equals_torchcam(net, small, method):
    from fastcam.methods import register_method, unregister_method, CAMMethod, _cam
    from fastcam.perturb import iscam_weights, sscam_weights
    name, kw = TORCHCAM[method]
    rerun = (iscam_weights if method == 'iscam' else sscam_weights)(kw['num_samples'])
    register_method(CAMMethod('few', _cam, grads=False, rerun=rerun))
    t = [1, 2]
    try:
        METHOD_RNG.manual_seed(11)
        ours = normalize_maps(cam_maps(net, small, LAYER, torch.tensor(t), 'few', batch_size=48))
    finally: unregister_method('few')
    torch.manual_seed(11)
    close(ours, torchcam_maps(name, net, LAYER, small, torch.tensor(t), batch_size=32, **kw), 1e-4)

def test_scorecam_against_both_peers(net, small):
    """Score-CAM has three definitions, each worked out here by hand from the same activation. fastcam's is the
    authors' code (github.com/haofanwang/Score-CAM): a channel weighs the class's softmax probability on the input
    masked by that channel. pytorch-grad-cam's class weighs the softmax over the channels of the class's logit (masks
    upsampled with aligned corners); torchcam's the softmax over the channels of the logit's rise above the unmasked
    input's (masks scaled before they are upsampled). The three maps differ"""
    import torch.nn.functional as F
    t, idx = torch.tensor([1, 2]), torch.arange(2)
    A, _ = hand_gradients(net, LAYER, small, t)
    def minmax(a):
        lo, hi = a.amin((-2, -1), keepdim=True), a.amax((-2, -1), keepdim=True)
        return (a - lo) / (hi - lo + 1e-8)
    up = lambda a, corners: F.interpolate(a, size=small.shape[-2:], mode='bilinear', align_corners=corners)
    def logits(masks):  # the logits of each item masked by each of its masks: (n, k, classes)
        with torch.no_grad(): return torch.stack([net(small[i] * masks[i][:, None]) for i in idx])
    weighed = lambda w: normalize_maps((w[..., None, None] * A).sum(1).relu())
    ours = cam_maps(net, small, LAYER, t, 'scorecam', batch_size=48)
    close(normalize_maps(ours), weighed(logits(minmax(up(A, False))).softmax(-1)[idx, :, t]))
    model = copy.deepcopy(net)
    cam = pgc.ScoreCAM(model, [model.get_submodule(LAYER)])
    w = torch.from_numpy(cam.get_cam_weights(small, None, [ClassifierOutputTarget(int(c)) for c in t], A.numpy(), None))
    torch.testing.assert_close(w, logits(minmax(up(A, True)))[idx, :, t].softmax(-1), rtol=1e-4, atol=1e-6)
    tc_map = torchcam_maps('ScoreCAM', net, LAYER, small, t, batch_size=32)
    with torch.no_grad(): base = net(small)[idx, t]
    close(weighed((logits(up(minmax(A), False))[idx, :, t] - base[:, None]).softmax(-1)), tc_map)
    assert (normalize_maps(ours) - tc_map).abs().amax() > 0.05
    assert (normalize_maps(upsample_maps(ours, small.shape[-2:])) - theirs(pgc.ScoreCAM, net, small, t)).abs().amax() > 0.05

def test_segeigencam_on_a_unet_equals_pytorch_grad_cam():
    "A dense model: each class's logits summed over its predicted region, as pytorch-grad-cam's SemanticSegmentationTarget"
    from fastai.vision.all import DynamicUnet
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
    set_seed(4)
    unet = DynamicUnet(create_vision_model(resnet18, 3, pretrained=False)[0], 3, (64, 64)).eval()
    xs = torch.randn(1, 3, 64, 64)
    layer = 'layers.4'  # the first decoder block
    with torch.no_grad(): region = unet(xs).argmax(1) == 2
    ours = normalize_maps(upsample_maps(cam_maps(unet, xs, layer, 2, 'segeigencam', region=region), (64, 64)))
    model = copy.deepcopy(unet)
    with pgc.SegEigenCAM(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        ref = torch.from_numpy(cam(xs, targets=[SemanticSegmentationTarget(2, region[0].float().numpy())]))
    close(ours, ref)

def test_finercam_equals_pytorch_grad_cam(net, x):
    "Finer-CAM explains class 2 against its 3 closest classes (pytorch-grad-cam's `target_idx` and defaults)"
    t = torch.tensor([2, 2])
    model = copy.deepcopy(net)
    with pgc.FinerCAM(model=model, target_layers=[model.get_submodule(LAYER)]) as cam:
        ref = torch.from_numpy(cam(x, targets=None, target_idx=2))
    close(ours_like_pgc(net, x, 'finercam', t), ref)
    assert (ours_like_pgc(net, x, 'finercam', t) - ours_like_pgc(net, x, 'gradcam', t)).abs().amax() > 0.1

def test_shapleycam_equals_pytorch_grad_cam():
    "On a smooth model (SiLU): the Hessian-vector product matters, and both libraries take it alike"
    set_seed(3)
    net = create_vision_model(resnet18, 3, pretrained=False).eval()
    for m in list(net.modules()):
        for n, c in list(m.named_children()):
            if isinstance(c, torch.nn.ReLU): setattr(m, n, torch.nn.SiLU())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1, 2])
    ours = ours_like_pgc(net, x, 'shapleycam', t)
    close(ours, theirs(pgc.ShapleyCAM, net, x, t))
    assert (ours - ours_like_pgc(net, x, 'gradcam', t)).abs().amax() > 0.01
    assert all(p.grad is None for p in net.parameters())

class Wrapped(torch.nn.Module):
    "Not an `nn.Sequential`: FullGrad keeps its whole graph instead of going back a segment at a time"
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, x): return self.m(x)

@pytest.mark.parametrize('wrapped', [False, True])
def test_fullgrad_equals_pytorch_grad_cam(net, x, wrapped):
    t = torch.tensor([0, 2])
    model = Wrapped(net) if wrapped else net
    ours = normalize_maps(cam_maps(model, x, 'm.' + LAYER if wrapped else LAYER, t, 'fullgrad'))  # at the input's size
    close(ours, theirs(pgc.FullGrad, net, x, t))
    assert all(p.grad is None for p in net.parameters()) and not any(m._forward_hooks for m in net.modules())

def test_fullgrad_refuses_a_model_without_conv_biases():
    from torch import nn
    m = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match='has none with a bias'): cam_maps(m, torch.randn(1, 3, 8, 8), '0', 0, 'fullgrad')

def test_eigen_smooth_equals_pytorch_grad_cam_up_to_sign(net, x):
    t = torch.tensor([1, 0])
    ours = ours_like_pgc(net, x, 'gradcam', t, smooth='eigen')
    model = copy.deepcopy(net)
    with pgc.GradCAM(model=model, target_layers=[model.get_submodule(LAYER)]) as cam:
        ref = torch.from_numpy(cam(x, targets=[ClassifierOutputTarget(int(c)) for c in t], eigen_smooth=True))
    from fastcam.methods import register_method, unregister_method, CAMMethod
    register_method(CAMMethod('flipped', lambda A, G, W: -get_method('gradcam').weigh(A, G, W)))
    try: flipped = ours_like_pgc(net, x, 'flipped', t, smooth='eigen')  # the projection of the other sign
    finally: unregister_method('flipped')
    for i in range(len(x)):
        err = min((ours[i] - ref[i]).abs().amax(), (flipped[i] - ref[i]).abs().amax())
        assert err <= 1e-4, (i, err.item())
    with pytest.raises(ValueError, match='gives its map directly'): cam_maps(net, x, LAYER, t, 'eigencam', smooth='eigen')

def test_smoothgradcampp_and_torchcam(net):
    """With the same noise: fastcam's `grads='last'` weights are torchcam's, and torchcam's map is those weights on its
    last noisy copy's activation. fastcam's default (the paper: the gradients averaged over the copies, the input's
    activation) differs from torchcam's map"""
    import torchcam.methods as tc
    from fastcam.hooks import CAMHook
    from fastcam.perturb import smoothgradcampp_weights
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([2, 0])
    METHOD_RNG.manual_seed(5)
    with CAMHook(net, LAYER, 'smoothgradcam++') as hook:
        with torch.no_grad(): net(x)
        w = hook._paused(smoothgradcampp_weights(4, 0.3, 'last'), net, x, hook.act.detach(), t, 64, hook)
    METHOD_RNG.manual_seed(5)
    ours = normalize_maps(cam_maps(net, x, LAYER, t, 'smoothgradcam++'))  # fastcam's defaults: 4 copies, noise 0.3
    model, g = copy.deepcopy(net), torch.Generator().manual_seed(5)
    class Noise:
        def sample(self, size): return torch.randn(size, generator=g) * 0.3  # METHOD_RNG's draws, in the same order
    with tc.SmoothGradCAMpp(model, LAYER, num_samples=4, std=0.3, input_shape=(3, 64, 64)) as cam:
        cam._distrib = Noise()
        ref = cam(t.tolist(), model(x))[0]
        last = cam.hook_a[0]  # the last noisy copy's activation
    close(normalize_maps((w[:, :, None, None] * last).sum(1).relu()), ref)
    assert (ours - ref).abs().amax() > 0.05

def test_several_layers_equal_pytorch_grad_cam():
    "Layers at 32×32 (the input's size, where pytorch-grad-cam fuses) and 16×16: the mean, and RefineCAM's product"
    from torch import nn
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3)).eval()
    with torch.no_grad(): m[-1].weight.mul_(1e4)  # Grad-CAM++: pytorch-grad-cam's 1e-6 in alpha does not matter then
    x, t, layers = torch.randn(2, 3, 32, 32), torch.tensor([0, 2]), ['1', '4']
    targets = [ClassifierOutputTarget(int(c)) for c in t]
    model = copy.deepcopy(m)
    with pgc.GradCAM(model=model, target_layers=[model.get_submodule(l) for l in layers]) as cam:
        close(normalize_maps(cam_maps(m, x, layers, t)), torch.from_numpy(cam(x, targets=targets)))
    import torchcam.methods as tc  # torchcam's fusion: the max of the maps, each scaled at its own size
    with tc.GradCAM(copy.deepcopy(m), layers, input_shape=(3, 32, 32)) as cam:
        fused = cam.fuse_cams(cam(t.tolist(), cam.model(x)))
    close(cam_maps(m, x, layers, t, fuse='max'), fused)
    # RefineCAM: pytorch-grad-cam scales each layer's map after upsampling it to the input, fastcam (as for its other
    # fusions) before: the same where the layers have the input's size, as the conv and its ReLU here
    refine = pgc.RefineCAM(model, [model.get_submodule(l) for l in ['0', '1']])
    close(normalize_maps(cam_maps(m, x, ['0', '1'], t, 'refinecam')), torch.from_numpy(refine(x, targets)))
    assert not any(mod._forward_hooks for mod in m.modules())

def test_aug_smooth_equals_pytorch_grad_cam(net, small):
    "pytorch-grad-cam's default augmentations: horizontal flips × brightness 0.9, 1, 1.1"
    t = torch.tensor([2, 0])
    model = copy.deepcopy(net)
    with pgc.GradCAM(model=model, target_layers=[model.get_submodule(LAYER)]) as cam:
        ref = torch.from_numpy(cam(small, targets=[ClassifierOutputTarget(int(c)) for c in t], aug_smooth=True))
    close(cam_maps(net, small, LAYER, t, smooth='aug'), ref)  # already at the input's size, each map scaled

def test_sess_equals_pytorch_grad_cam(net):
    "SESS with its defaults (12 scales, windows of the shorter side, mean fusion, blur) on a non-square input"
    from pytorch_grad_cam.sess import SESS
    x = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([2])
    model = copy.deepcopy(net)
    ref = torch.from_numpy(SESS(model, [model.get_submodule(LAYER)])(x, [ClassifierOutputTarget(int(c)) for c in t]))
    close(normalize_maps(cam_maps(net, x, LAYER, t, smooth='sess')), ref)
    with pytest.raises(ValueError, match='one class per item'): cam_maps(net, x, LAYER, 'all', smooth='sess')
    assert not any(m._forward_hooks for m in net.modules()) and all(p.grad is None for p in net.parameters())

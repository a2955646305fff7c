"""Every image method against pytorch-grad-cam's or torchcam's own class on the same model, layer, input and class:
equal to 1e-4 after each library's normalisation (the stochastic ones with the noise shared)."""
import copy, pytest, torch
from fastai.vision.all import create_vision_model, resnet18, set_seed
from fastcam.hooks import cam_maps
from fastcam.core import normalize_maps, upsample_maps, METHOD_RNG
from fastcam.methods import get_method
pgc = pytest.importorskip('pytorch_grad_cam')
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
    timm = pytest.importorskip('timm')
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

TORCHCAM = {'iscam': ('ISCAM', dict(num_samples=3)), 'sscam': ('SSCAM', dict(num_samples=2))}

@pytest.mark.parametrize('method', list(TORCHCAM))
def test_equals_torchcam(net, small, method):
    "IS-CAM exactly; SS-CAM with the same noise (torchcam draws from torch's generator, fastcam from METHOD_RNG)"
    tc = pytest.importorskip('torchcam.methods')
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
    model = copy.deepcopy(net)
    with getattr(tc, name)(model, LAYER, batch_size=32, input_shape=(3, SIZE // 2, SIZE // 2), **kw) as cam:
        torch.manual_seed(11)
        with torch.no_grad(): out = model(small)
        ref = cam(t, out)[0]
    close(ours, ref, 1e-4)

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

def test_smoothgradcampp_weights_equal_torchcam(net):
    """With the same noise, the weights of torchcam's variant (`grads='last'`) equal torchcam's. torchcam then weighs
    its last noisy sample's activation, fastcam the input's"""
    tc = pytest.importorskip('torchcam.methods')
    from fastcam.hooks import CAMHook
    from fastcam.perturb import smoothgradcampp_weights
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([2, 0])
    METHOD_RNG.manual_seed(5)
    with CAMHook(net, LAYER, 'smoothgradcam++') as hook:
        with torch.no_grad(): net(x)
        w = hook._paused(smoothgradcampp_weights(3, 0.3, 'last'), net, x, hook.act.detach(), t, 64, hook)
    model, g = copy.deepcopy(net), torch.Generator().manual_seed(5)
    class Noise:
        def sample(self, size): return torch.randn(size, generator=g) * 0.3  # METHOD_RNG's draws, in the same order
    with tc.SmoothGradCAMpp(model, LAYER, num_samples=3, std=0.3, input_shape=(3, 64, 64)) as cam:
        cam._distrib = Noise()
        model(x)
        ref = cam._get_weights(t.tolist())[0]
    assert (w - ref).abs().amax() <= 2e-4 * ref.abs().amax()

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
    tc = pytest.importorskip('torchcam.methods')  # torchcam's fusion: the max of the maps, each scaled at its own size
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

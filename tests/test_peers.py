"Grad-CAM and CAM against independent implementations: captum's LayerGradCam and the book's einsum."
import pytest, torch
from captum.attr import LayerGradCam
from fastai.vision.all import create_vision_model, resnet34, resnet18, set_seed
from fastcam.hooks import cam_maps
from fastcam.core import cam_head, METHOD_RNG
from fastcam.methods import CAM_METHODS, get_method
from fastcam.callback import CAMCallback

def rel_close(a, b, tol=1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = b.abs().amax().clamp_min(1e-12)
    assert ((a - b).abs().amax() / scale) <= tol, ((a - b).abs().amax() / scale).item()

@pytest.fixture(scope='module')
def r34():
    set_seed(1)
    return create_vision_model(resnet34, 2, pretrained=False).eval()

@pytest.mark.parametrize('layer', ['0', '0.6'])
@pytest.mark.parametrize('target', [0, 1])
def test_gradcam_equals_captum(r34, layer, target):
    x = torch.randn(3, 3, 96, 96)
    mod = r34.get_submodule(layer)
    ref = LayerGradCam(r34, mod).attribute(x, target=target, relu_attributions=True)[:, 0].detach()
    rel_close(cam_maps(r34, x, layer, target, 'gradcam'), ref)
    assert all(p.grad is None for p in r34.parameters())

@pytest.fixture(scope='module')
def r34_learner(pets_path):
    "A Learner around fastai's create_vision_model(resnet34, 2, pretrained=False), on the synthetic pets"
    from conftest import make_dls
    from fastai.vision.all import Learner, CrossEntropyLossFlat
    set_seed(1)
    return Learner(make_dls(pets_path), create_vision_model(resnet34, 2, pretrained=False), loss_func=CrossEntropyLossFlat())

@pytest.mark.parametrize('layer', ['0', '0.6'])
def test_callback_gradcam_equals_captum(r34_learner, layer):
    "Inside fastai's get_preds: the maps for the whole validation set equal captum's, item for item"
    learn = r34_learner
    cb = CAMCallback(layer=layer, target=1)
    learn.get_preds(cbs=cb)
    xs = torch.cat([xb for xb, _ in learn.dls.valid]).as_subclass(torch.Tensor)
    learn.model.eval()
    ref = LayerGradCam(learn.model, learn.model.get_submodule(layer)).attribute(xs, target=1, relu_attributions=True)
    rel_close(cb.maps, ref[:, 0].detach())
    assert (cb.targets == 1).all()

def test_cam_is_book_einsum_on_cam_head():
    set_seed(2)
    m = create_vision_model(resnet18, 3, pretrained=False, custom_head=cam_head(512, 3)).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad(): act = m[0](x)
    book = torch.einsum('ck,bkij->bcij', m[1][-1].weight, act)  # the book's einsum, per item
    cam = cam_maps(m, x, '0', 'all', 'cam')
    rel_close(cam, book)
    h, w = act.shape[-2:]
    for c in range(3): rel_close(cam_maps(m, x, '0', c, 'gradcam') * h * w, book[:, c].relu(), 1e-5)

def test_cam_refused_on_default_head(r34):
    with pytest.raises(ValueError, match="cam_head"): cam_maps(r34, torch.randn(1, 3, 64, 64), '0', method='cam')

def seeded(*args):
    METHOD_RNG.manual_seed(0)  # randomcam: the same draws for each call
    return cam_maps(*args)

@pytest.mark.parametrize('method', [m for m in CAM_METHODS if not get_method(m).head_weights and get_method(m).rerun is None])
@pytest.mark.parametrize('layer', ['0', '0.6'])
def test_all_equals_loop(r34, method, layer):
    "One class at a time, by hand, against 'all' (the methods that re-run the model: in the 06_hooks notebook)"
    x = torch.randn(2, 3, 64, 64)
    allm = seeded(r34, x, layer, 'all', method)
    loop = torch.stack([seeded(r34, x, layer, c, method) for c in range(2)], 1)
    rel_close(allm, loop, 1e-5)

def test_per_item_targets(r34):
    x = torch.randn(3, 3, 64, 64)
    per = cam_maps(r34, x, '0', torch.tensor([0, 1, 1]))
    for i, c in enumerate([0, 1, 1]): rel_close(per[i:i+1], cam_maps(r34, x[i:i+1], '0', c), 1e-5)

@pytest.mark.parametrize('arch', ['resnet18', 'mobilenet_v3_small', 'efficientnet_b0', 'regnet_y_400mf', 'densenet121',
                                  'googlenet', 'shufflenet_v2_x0_5', 'squeezenet1_0'])
def test_located_layer_is_torchcams(arch):
    "The default layer of a model fastcam does not know: the one torchcam's locate_candidate_layer picks"
    import torchvision.models as tm
    from torchcam.methods._utils import locate_candidate_layer
    from fastcam.hooks import locate_layer
    kw = dict(aux_logits=False, init_weights=False) if arch == 'googlenet' else {}
    model = getattr(tm, arch)(num_classes=3, **kw).eval()
    assert locate_layer(model, torch.randn(2, 3, 96, 96)) == locate_candidate_layer(model, (3, 96, 96))
    assert not any(m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())

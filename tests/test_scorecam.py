"""Score-CAM inside fastai's get_preds: the masked copies of each batch are run inside the pass, the maps equal a
hand-written loop over items and channels (Wang et al. 2020), and predictions and losses stay fastai's own."""
import pytest, torch, torch.nn.functional as F
from fastai.vision.all import Tensor
from fastcam.callback import CAMCallback
from fastcam.interpret import CAMInterpretation
from conftest import no_hooks

def hand_scorecam(model, layer, x):
    "For each item and channel: the input masked by the channel's upsampled, min-max scaled map; class softmax weights"
    acts = []
    h = layer.register_forward_hook(lambda m, i, o: acts.append(o.detach()))
    with torch.no_grad():
        out = model.eval()(x)
        h.remove()
        act, c = acts[0], out.argmax(1)
        maps = []
        for i in range(len(x)):
            w = []
            for k in range(act.shape[1]):
                a = F.interpolate(act[i, k][None, None], size=x.shape[-2:], mode='bilinear', align_corners=False)[0, 0]
                m = (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else torch.zeros_like(a)
                w.append(model((x[i] * m)[None]).softmax(-1)[0, c[i]])
            maps.append((torch.stack(w)[:, None, None] * act[i]).sum(0).relu())
    return torch.stack(maps)

def test_scorecam_in_get_preds(trained):
    learn = trained
    ref_preds, ref_targs, ref_losses = learn.get_preds(with_loss=True)
    cb = CAMCallback(layer='0.6', method='scorecam')
    preds, targs, losses = learn.get_preds(with_loss=True, cbs=cb)
    for a, b in ((preds, ref_preds), (targs, ref_targs), (losses, ref_losses)): assert torch.equal(a, b)
    x = next(iter(learn.dls.valid))[0].as_subclass(Tensor)[:3]
    torch.testing.assert_close(cb.maps[:3], hand_scorecam(learn.model, learn.model[0][6], x), rtol=1e-4, atol=1e-6)
    assert no_hooks(learn.model) and torch.is_grad_enabled()

def test_scorecam_through_the_interpretation(trained):
    interp = CAMInterpretation.from_learner(trained, layer='0.6', method='scorecam')
    assert interp.cam.method_used == 'scorecam' and interp.maps.shape == (len(trained.dls.valid_ds), 4, 4)

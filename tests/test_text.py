"""Text classifiers: one map per review over its own tokens, in get_preds order across fastai's SortedDL; Grad-CAM over
the encoder against a hand-written hook + autograd.grad per review; integrated gradients against captum's
LayerIntegratedGradients; lifecycle; bad inputs; the fastcam-text CLI."""
import os, subprocess, sys
from pathlib import Path
import pytest, torch
from fastai.text.all import text_classifier_learner, AWD_LSTM, set_seed, Tensor
from fastcam.callback import CAMCallback
from fastcam.interpret import CAMInterpretation
from fastcam.data import synth_reviews, review_dls
from conftest import Boom, no_hooks

@pytest.fixture(scope='module')
def text_learn():
    set_seed(0)
    learn = text_classifier_learner(review_dls(synth_reviews(120, seed=1), bs=16), AWD_LSTM, pretrained=False,
                                    drop_mult=0.5)
    learn.fit(1, 1e-3)
    return learn

def review_ids(learn, i): return learn.dls.valid_ds[i][0].as_subclass(Tensor)

def hand_gradcam(learn, ids, c):
    "Grad-CAM over the encoder output of one review, by hand: hook, autograd.grad, mean over positions"
    outs = []
    h = learn.model[0].register_forward_hook(lambda m, i, o: outs.append(o[0]))
    learn.model.eval()
    with torch.enable_grad():
        score = learn.model(ids[None])[0][0, c]; h.remove()
        g, = torch.autograd.grad(score, outs[0])
    a = outs[0][0].detach()  # (L, 400)
    return (g[0].mean(0) * a).sum(-1).relu()

def test_one_map_per_review_in_get_preds_order(text_learn):
    learn = text_learn
    cb = CAMCallback(method='gradcam')
    preds, targs = learn.get_preds(cbs=cb)
    n = len(learn.dls.valid_ds)
    assert isinstance(cb.maps, list) and len(cb.maps) == n == len(preds)
    lens = [len(review_ids(learn, i)) for i in range(n)]
    assert [len(m) for m in cb.maps] == lens and len(set(lens)) > 1  # ragged, padding removed
    assert list(learn.dls.valid.get_idxs()) != list(range(n))  # the SortedDL does reorder the reviews
    for i in range(n):  # each map is that review's own, computed alone by hand
        ref = hand_gradcam(learn, review_ids(learn, i), int(cb.targets[i]))
        torch.testing.assert_close(cb.maps[i], ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(cb.targets, preds.argmax(1))

def test_intgrad_equals_captum(text_learn):
    from captum.attr import LayerIntegratedGradients
    learn = text_learn
    cb = CAMCallback()  # the text default
    learn.get_preds(cbs=cb)
    assert cb.method_used == 'intgrad'
    emb = learn.model[0].module.encoder
    spare = learn.dls.vocab[0].index('xxfld')  # a token in no review: its embedding set to zero is the baseline
    old = emb.weight[spare].clone()
    try:
        with torch.no_grad(): emb.weight[spare] = 0
        lig = LayerIntegratedGradients(lambda x: learn.model(x)[0], learn.model[0].module.encoder_dp)
        for i in (0, 5):
            ids = review_ids(learn, i)[None]
            attr = lig.attribute(ids, torch.full_like(ids, spare), target=int(cb.targets[i]), n_steps=4,
                                 method='gausslegendre').sum(-1)[0]
            torch.testing.assert_close(cb.maps[i], attr.detach().float(), rtol=1e-4, atol=1e-5)
    finally:
        with torch.no_grad(): emb.weight[spare] = old

def embedding_forward(learn, ids, layer):
    "The model as a function of its embedding layer's output (the layer's output replaced by the argument): logits"
    def f(e):
        h = layer.register_forward_hook(lambda m, i, o: e)
        try: return learn.model(ids.expand(len(e), -1))[0]
        finally: h.remove()
    return f

@pytest.mark.parametrize('method', ['occlusion', 'gradxinput', 'smoothgrad'])
def test_token_methods_equal_captum(text_learn, method, monkeypatch):
    """Each review's map equals captum's on that review alone, at the embedding (fastai's `encoder_dp`): `Occlusion` of
    one token's embedding at a time, xxunk's embedding the baseline; `LayerGradientXActivation`; `NoiseTunnel` over
    `Saliency` (SmoothGrad, 8 samples, noise 0.15 × the embedding's std, the same draws) × the embedding"""
    from captum.attr import Occlusion, LayerGradientXActivation, NoiseTunnel, Saliency
    from fastcam.core import METHOD_RNG, method_noise
    from fastcam.methods import get_method
    learn = text_learn
    layer = learn.model[0].module.encoder_dp
    if method != 'smoothgrad':  # inside get_preds, every review
        cb = CAMCallback(method=method)
        learn.get_preds(cbs=cb)
        maps, targets = cb.maps, cb.targets
    learn.model.eval()
    for i in (0, 5, 9):
        ids = review_ids(learn, i)[None]
        with torch.no_grad(): e = layer(ids)  # the embedding, as the model sees it (encoder_dp takes the ids)
        if method == 'smoothgrad':  # the same noise: fastcam's draws from METHOD_RNG, handed to captum's torch.normal
            t = learn.model(ids)[0].argmax(1)
            METHOD_RNG.manual_seed(i)
            ours = get_method('smoothgrad').token_maps(learn.model, ids, layer, t, torch.tensor([ids.shape[1]]))[0]
            METHOD_RNG.manual_seed(i)
            with monkeypatch.context() as mp:
                mp.setattr(torch, 'normal', lambda mean, std: mean + method_noise(std.shape, std) * std)
                g = NoiseTunnel(Saliency(embedding_forward(learn, ids, layer))).attribute(
                    e, nt_type='smoothgrad', nt_samples=8, stdevs=0.15 * e.std().item(), target=int(t), abs=False)
            ref = (g * e).sum(-1)[0]
        else:
            ours, t = maps[i], int(targets[i])
            if method == 'occlusion':
                with torch.no_grad(): unk = layer(torch.zeros_like(ids))  # xxunk's embedding (id 0) everywhere
                ref = Occlusion(embedding_forward(learn, ids, layer)).attribute(
                    e, sliding_window_shapes=(1, e.shape[-1]), baselines=unk, target=t)[0, :, 0]
            else:
                ref = LayerGradientXActivation(lambda x: learn.model(x)[0], layer).attribute(ids, target=t).sum(-1)[0]
        torch.testing.assert_close(ours, ref.detach().float(), rtol=1e-4, atol=1e-5)

def test_gauss_legendre_against_many_steps(text_learn):
    """Against captum's path integral at 64 steps: 4 Gauss-Legendre points (the default, half the passes of the 8
    midpoints before) are closer than 4 midpoints, and within 3%"""
    from captum.attr import LayerIntegratedGradients
    from fastcam.tokens import integrated_gradients
    learn = text_learn
    emb = learn.model[0].module.encoder
    spare = learn.dls.vocab[0].index('xxfld')
    old = emb.weight[spare].clone()
    errs = {'gauss4': [], 'midpoint8': [], 'midpoint4': []}
    try:
        with torch.no_grad(): emb.weight[spare] = 0
        learn.model.eval()
        lig = LayerIntegratedGradients(lambda x: learn.model(x)[0], learn.model[0].module.encoder_dp)
        for i in (0, 4, 8):
            ids = review_ids(learn, i)[None]
            t = learn.model(ids)[0].argmax(1)
            ref = lig.attribute(ids, torch.full_like(ids, spare), target=int(t), n_steps=64).sum(-1)[0].detach()
            for name, kw in (('gauss4', {}), ('midpoint8', dict(steps=8, rule='midpoint')),
                             ('midpoint4', dict(steps=4, rule='midpoint'))):
                got = integrated_gradients(learn.model, ids, learn.model[0].module.encoder_dp, t, **kw)[0]
                errs[name].append(((got - ref).norm() / ref.norm()).item())
    finally:
        with torch.no_grad(): emb.weight[spare] = old
    mean = {k: sum(v) / len(v) for k, v in errs.items()}
    assert mean['gauss4'] < min(mean['midpoint4'], 0.03), mean

def test_predictions_unchanged_and_occlusion(text_learn):
    learn = text_learn
    ref = learn.get_preds(with_loss=True)
    for m in ('gradcam', 'intgrad', 'occlusion'):
        got = learn.get_preds(with_loss=True, cbs=CAMCallback(method=m))
        for a, b in zip(ref, got): assert torch.equal(a, b)
    cb = CAMCallback(method='occlusion'); learn.get_preds(cbs=cb)
    ids = review_ids(learn, 3); c = int(cb.targets[3])
    learn.model.eval()
    with torch.no_grad():
        base = learn.model(ids[None])[0][0, c]
        occluded = ids.clone(); occluded[2] = 0  # token 2 replaced by xxunk
        drop = base - learn.model(occluded[None])[0][0, c]
    torch.testing.assert_close(cb.maps[3][2], drop, rtol=1e-4, atol=1e-6)

def test_interpretation_and_show_cam(text_learn):
    interp = CAMInterpretation.from_learner(text_learn)
    assert len(interp.maps) == len(text_learn.dls.valid_ds)
    fig = interp.plot_cam(k=2, hide_special=True)
    assert all('xxbos' not in t.get_text() for ax in fig.axes for t in ax.texts)
    assert 'xxbos' in interp.html_cam(k=1).data and 'xxbos' not in interp.html_cam(k=1, hide_special=True).data
    label, probs, tokens, m = text_learn.show_cam("a superb film")
    assert tokens[0] == 'xxbos' and len(tokens) == len(m)

def test_lifecycle_and_bad_inputs(text_learn):
    learn = text_learn
    learn.add_cb(CAMCallback(method='gradcam'))
    try:
        with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=Boom())
        assert no_hooks(learn.model) and torch.is_grad_enabled()
    finally: learn.remove_cb(CAMCallback)
    with pytest.raises(ValueError, match=r"inside the text encoder's recurrent module.*learn.model\[0\]"):
        learn.get_preds(cbs=CAMCallback(layer='0.module.rnns.0'))
    with pytest.raises(Exception, match="explains one class per item"):
        learn.get_preds(cbs=CAMCallback(method='intgrad', target='all'))
    assert no_hooks(learn.model)

def test_token_method_on_an_image_model(trained):
    with pytest.raises(ValueError, match="needs a model that takes tokens"):
        trained.get_preds(cbs=CAMCallback(method='occlusion'))

CLI = Path(sys.executable).parent/'fastcam-text'

def test_cli_synthetic_and_unreachable(tmp_path):
    r = subprocess.run([str(CLI), '--synthetic', '--n', '80', '--epochs', '1', '--out', str(tmp_path/'out')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for f in ('learner.pkl', 'text_cams.png', 'metrics.json'): assert (tmp_path/'out'/f).stat().st_size > 0
    assert 'text pointing game: gradcam' in r.stdout and '\r' not in r.stdout
    r = subprocess.run([str(CLI), '--out', str(tmp_path/'o2')], capture_output=True, text=True, timeout=120,
                       env={**os.environ, 'FASTAI_HOME': str(tmp_path/'home')})
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith('fastcam-text: error: Could not get the IMDB sample')

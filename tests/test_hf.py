"""Hugging Face text classifiers in a fastai Learner (`fastcam.hf`): maps inside get_preds with predictions
bit-identical, for a BERT-style and a DistilBERT-style model; integrated gradients against captum's
LayerIntegratedGradients on the same embedding and baseline; word aggregation against a hand computation from the
tokenizer's word ids; lifecycle and export; bad input."""
import os, subprocess, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from types import SimpleNamespace
import pytest, torch, torch.nn as nn
from fastai.text.all import Tensor
from fastcam.callback import CAMCallback
from fastcam.interpret import CAMInterpretation
from fastcam.data import synth_reviews
from fastcam.hf import wordpiece_tokenizer, small_hf_classifier, hf_text_dls, hf_learner, HFTokenize
from conftest import Boom, no_hooks, make_dls

@pytest.fixture(scope='module')
def tok():
    return wordpiece_tokenizer(synth_reviews(200, seed=3).text, vocab_size=60)  # small: words fall into pieces

@pytest.fixture(scope='module', params=['bert', 'distilbert'])
def learn(request, tok):
    df = synth_reviews(120, seed=3)
    dls = hf_text_dls(df.text, df.label, tok, bs=16, seed=0)
    learn = hf_learner(dls, small_hf_classifier(request.param, tok, seed=0))
    learn.fit(1, 1e-3)
    return learn

def ids_of(learn, i): return learn.dls.valid_ds[i][0].as_subclass(Tensor)

def own_ids(tok, ids):
    "The ids (or word ids) between the [CLS] the tokenizer puts first and the [SEP] it puts last: the text's own"
    assert ids[0] in (tok.cls_token_id, None) and ids[-1] in (tok.sep_token_id, None)
    return ids[1:-1]

@pytest.mark.parametrize('method', ['intgrad', 'gradxinput', 'occlusion', 'smoothgrad', 'gradcam'])
def test_maps_inside_get_preds(learn, tok, method):
    plain = learn.get_preds()
    cb = CAMCallback(method=method)
    preds, targs = learn.get_preds(cbs=cb)
    assert torch.equal(preds, plain[0]) and torch.equal(targs, plain[1])
    assert [len(m) for m in cb.maps] == [len(own_ids(tok, ids_of(learn, i))) for i in range(len(preds))]  # its own
    assert all(torch.isfinite(m).all() for m in cb.maps) and torch.equal(cb.targets, preds.argmax(1))
    assert no_hooks(learn.model)

def test_intgrad_equals_captum(learn, tok):
    from captum.attr import LayerIntegratedGradients
    cb = CAMCallback()  # the kind's default
    learn.get_preds(cbs=cb)
    assert cb.method_used == 'intgrad'
    hf, pad = learn.model.hf, learn.model.pad_id
    emb = hf.get_input_embeddings()
    assert not emb.weight[pad].any()  # the padding token's embedding is zero (padding_idx): the baseline of both
    lig = LayerIntegratedGradients(lambda x: learn.model(x), emb)
    for i in (0, 5):
        ids = ids_of(learn, i)[None]
        attr = lig.attribute(ids, torch.full_like(ids, pad), target=int(cb.targets[i]), n_steps=4,
                             method='gausslegendre').sum(-1)[0]
        assert ids[0, 0] == tok.cls_token_id and ids[0, -1] == tok.sep_token_id  # the text's own tokens: between
        torch.testing.assert_close(cb.maps[i], attr[1:-1].detach().float(), rtol=1e-4, atol=1e-5)

def test_words_summed_by_hand(learn, tok):
    interp = CAMInterpretation.from_learner(learn)
    words, wmaps = interp.word_cams([0, 1, 2])
    maps = interp.item_cams([0, 1, 2])[0]
    for i, (w, wm, m) in enumerate(zip(words, wmaps, maps)):
        text = learn.dls.valid.items.iloc[i]['text']
        enc = tok(text)
        assert enc['input_ids'] == ids_of(learn, i).tolist()
        by_hand = {}
        own = own_ids(tok, enc.word_ids())  # (the word ids of [CLS] and [SEP] are None)
        assert len(m) == len(own) and None not in own
        for j, wid in enumerate(own): by_hand[wid] = by_hand.get(wid, 0.) + float(m[j])
        assert w == text.split()  # (the reviews' words are separated by spaces)
        torch.testing.assert_close(wm, torch.tensor([by_hand[k] for k in range(len(w))]), rtol=1e-5, atol=1e-6)

def test_views_audit_and_app_show_words(learn):
    "plot_cam / html_cam / show_cam, the audit's panels and the app: each text's words, not its sub-words"
    from fastcam.app import explain_item
    interp = CAMInterpretation.from_learner(learn)
    html = interp.html_cam(k=2).data
    assert '[CLS]' not in html and '##' not in html
    label, probs, words, m = learn.show_cam('a superb film')
    assert words == ['a', 'superb', 'film'] and m.shape == (3,)
    _, app_html = explain_item(learn, 'a superb film')
    assert '##' not in app_html and 'superb' in app_html and '[CLS]' not in app_html
    toks = interp.tokens([0])[0]  # the sub-words each map covers: no [CLS], [SEP] or padding
    assert any(t.startswith('##') for t in toks) and not {'[CLS]', '[SEP]', '[PAD]'} & set(toks)

def test_every_verdict_applies(learn, tmp_path):
    """'auto', cam_report, sanity_checks, strategies and the audit on an HF text learner: each runs; the audit's panels
    show words, and its table of strategies, like `strategies()`, names the words that carry a cluster"""
    from fastcam.choose import choose_cam
    import fastcam.trust, fastcam.strategies, fastcam.audit  # (they patch CAMInterpretation)
    interp = CAMInterpretation.from_learner(learn)
    assert choose_cam(learn, n=4, verbose=False).layer == 'hf.' + next(
        n for n, m in learn.model.hf.named_modules() if m is learn.model.hf.get_input_embeddings())
    report = interp.cam_report(max_items=4)
    assert len(report) and report['faithfulness'].notna().any()
    assert len(interp.sanity_checks(n=4))
    table = CAMInterpretation.from_learner(learn, target='actual').strategies(n_neighbours=2)  # both classes
    words = {w for ws in interp.word_cams()[0] for w in ws}
    assert len(table) and all(set(r) <= words for r in table['region'])  # words of the reviews, no sub-word
    assert table.transfer.notna().all()  # each cluster's words pasted into the other class's reviews
    html = interp.audit(tmp_path/'audit.html', k=2, sanity=False).read_text()
    assert all(w in html for w in interp.word_cams(interp._ranked(2, True)[:1])[0][0])  # the panels: words

def test_monitor_draws_words(tok):
    "CAMMonitor on an HF text learner: one map per review over its sub-words per record, drawn over its words"
    from fastcam.monitor import CAMMonitor
    df = synth_reviews(60, seed=3)
    learn = hf_learner(hf_text_dls(df.text, df.label, tok, bs=16, seed=0), small_hf_classifier('bert', tok, seed=0))
    reviews = ['a superb film', 'the plot was dull']
    mon = CAMMonitor(reviews, target='pred')
    learn.fit(1, 1e-3, cbs=mon)
    assert mon.epochs == [0, 1] and [len(m) for m in mon.history[1]] == [len(tok(r)['input_ids']) - 2 for r in reviews]
    texts = [t.get_text() for ax in mon.plot_history().axes for t in ax.texts]
    assert 'superb' in texts and '[CLS]' not in texts and not any(t.startswith('##') for t in texts)

def test_subwords_are_pieces_of_words(tok):
    "The tests' tokenizer cuts words into pieces, so that the aggregation above sums more than one token per word"
    enc = tok(synth_reviews(5, seed=3).text[0])
    assert len(enc['input_ids']) - 2 > len(set(w for w in enc.word_ids() if w is not None))

def test_lifecycle_and_export(learn, tmp_path):
    grads = [None if p.grad is None else p.grad.clone() for p in learn.model.parameters()]
    learn.add_cb(CAMCallback(method='intgrad'))
    try:
        with pytest.raises(RuntimeError, match='boom'): learn.get_preds(cbs=Boom())
        assert no_hooks(learn.model) and torch.is_grad_enabled()
        learn.get_preds()
        assert all((g is None and p.grad is None) or torch.equal(g, p.grad)
                   for g, p in zip(grads, learn.model.parameters()))  # no parameter's .grad touched
        learn.export(tmp_path/'hf.pkl')
    finally: learn.remove_cb(CAMCallback)
    assert (tmp_path/'hf.pkl').exists() and no_hooks(learn.model)

def test_bad_input(tok):
    df = synth_reviews(40, seed=3)
    dls = hf_text_dls(df.text, df.label, tok)
    class NoEmbeddings(nn.Module):
        config = SimpleNamespace(num_labels=2)
        def get_input_embeddings(self): raise NotImplementedError
    with pytest.raises(ValueError, match='has no input embeddings'): hf_learner(dls, NoEmbeddings())
    with pytest.raises(TypeError, match='gives no word ids'): HFTokenize(SimpleNamespace(is_fast=False, pad_token_id=0))
    with pytest.raises(ValueError, match='has no padding token'):
        HFTokenize(SimpleNamespace(is_fast=True, pad_token_id=None))
    with pytest.raises(ValueError, match='40 texts but 39 labels'): hf_text_dls(df.text, df.label[:39], tok)

def test_transformers_stays_optional():
    "`fastcam.all` (fastcam.hf included) imports neither transformers nor tokenizers until an HF function is called"
    r = subprocess.run([sys.executable, '-c', "import sys, fastcam.all; "
                        "print('transformers' in sys.modules, 'tokenizers' in sys.modules)"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ['False', 'False']

# Vision: HF ViT, ConvNeXt and Swin in a fastai Learner on fastai's own image DataLoaders (64 px synthetic pets)

def vision_models():
    from transformers import (ViTConfig, ViTForImageClassification, ConvNextConfig, ConvNextForImageClassification,
                              SwinConfig, SwinForImageClassification, DeiTConfig, DeiTForImageClassification)
    torch.manual_seed(0)
    return dict(
        vit=ViTForImageClassification(ViTConfig(image_size=64, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                                num_attention_heads=2, intermediate_size=64, num_labels=2)),
        deit=DeiTForImageClassification(DeiTConfig(image_size=64, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=64, num_labels=2)),
        convnext=ConvNextForImageClassification(ConvNextConfig(image_size=64, hidden_sizes=[8, 16, 32, 64],
                                                               depths=[1, 1, 1, 1], num_labels=2)),
        swin=SwinForImageClassification(SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1],
                                                   num_heads=[2, 2], window_size=4, num_labels=2)))

# (the default layer of each, and how its output becomes (bs, channels, h, w) by hand)
BY_HAND = dict(vit=('hf.vit.layers.1.layernorm_before', lambda o: o[:, 1:].transpose(1, 2).unflatten(-1, (8, 8))),
               deit=('hf.deit.layers.1.layernorm_before', lambda o: o[:, 2:].transpose(1, 2).unflatten(-1, (8, 8))),
               convnext=('hf.convnext.encoder.stages.0', lambda o: o),  # 64 px: the 16x16 stage (MIN_SIDE)
               swin=('hf.swin.layernorm', lambda o: o.transpose(1, 2).unflatten(-1, (8, 8))))

@pytest.fixture(scope='module')
def image_dls(pets_path):
    return make_dls(pets_path, bs=8)

@pytest.mark.parametrize('arch', ['vit', 'deit', 'convnext', 'swin'])
def test_vision_gradcam_by_hand(image_dls, arch):
    learn = hf_learner(image_dls, vision_models()[arch])
    plain = learn.get_preds()[0]
    cb = CAMCallback(method='gradcam')
    preds = learn.get_preds(cbs=cb)[0]
    assert torch.equal(preds, plain) and no_hooks(learn.model)
    name, fold = BY_HAND[arch]
    assert cb.layer_name == name
    x = torch.cat([b[0] for b in learn.dls.valid]).as_subclass(torch.Tensor)[:4]
    layer, outs = learn.model.get_submodule(name), []
    h = layer.register_forward_hook(lambda m, i, o: outs.append(o[0] if isinstance(o, tuple) else o))
    try:
        with torch.enable_grad():
            out = learn.model.eval()(x)
            g, = torch.autograd.grad(out.gather(1, out.argmax(1, keepdim=True)).sum(), outs[0])
    finally: h.remove()
    A, G = fold(outs[0].detach()), fold(g)
    ref = (G.mean((-2, -1), keepdim=True) * A).sum(1).relu()
    torch.testing.assert_close(cb.maps[:4], ref, rtol=1e-4, atol=1e-6)

def test_vision_kinds_and_vit_attention(image_dls):
    from fastcam.kinds import model_kind
    from fastcam.choose import choose_cam
    ms = vision_models()
    kinds = {k: model_kind(hf_learner(image_dls, m).model).name for k, m in ms.items()}
    assert kinds == dict(vit='vit', deit='vit', convnext='hf vision', swin='hf vision')
    learn = hf_learner(image_dls, ms['vit'])
    cb = CAMCallback()  # a ViT's default: gradient rollout over every block, the class token dropped
    preds = learn.get_preds(cbs=cb)[0]
    assert cb.method_used == 'gradrollout' and cb.maps.shape == (len(preds), 8, 8)
    assert choose_cam(learn, n=4, verbose=False).method

"""`strategies()` against CoRelAy, SpRAy's reference pipeline: the same maps, the same preprocessing and 10 neighbours,
the same eigenvalues and clusters; and `strategies()`, its picture and its audit section on every learner kind"""
import tempfile
from pathlib import Path
import numpy as np, pytest, torch
from corelay.pipeline.spectral import SpectralEmbedding, SpectralClustering
from corelay.processor.embedding import EigenDecomposition
from corelay.processor.clustering import KMeans as CoRelAyKMeans
from sklearn.metrics import adjusted_rand_score
from fastai.vision.all import vision_learner, resnet18, set_seed
from fastcam.data import synth_pets, pets_dls
from fastcam.interpret import CAMInterpretation
from fastcam.strategies import map_features, spectral_embedding, spectral_clusters, eigengap

@pytest.fixture(scope='module')
def maps():
    "Grad-CAM maps of 64 synthetic pets from a seeded resnet18 (no training needed: the maps differ between items)"
    set_seed(0)
    learn = vision_learner(pets_dls(synth_pets(tempfile.mkdtemp(), n=80, size=64, seed=3), 64, bs=16, num_workers=0),
                           resnet18, pretrained=False)
    with learn.no_bar(): return CAMInterpretation.from_learner(learn, ds_idx=0, layer='0.6').maps

def corelay_embedding(features, n_eigval):
    # CoRelAy's default `which='LM'` takes the largest eigenvalues in magnitude of D^-1/2 A D^-1/2, which reach -1;
    # SpRAy's smallest eigenvalues of the Laplacian are its largest algebraic ones, 'LA'
    return SpectralEmbedding(embedding=EigenDecomposition(n_eigval=n_eigval, which='LA'))(features)

def test_eigenvalues_equal_corelay(maps):
    f = map_features(maps)
    vals, _ = spectral_embedding(f, n_neighbours=10, n_eig=8)
    ref, _ = corelay_embedding(f, 8)
    np.testing.assert_allclose(vals, np.sort(ref), atol=1e-5)

def test_clusters_equal_corelay(maps):
    f = map_features(maps)
    k = eigengap(spectral_embedding(f, 10, 9)[0])
    for n in (k, k + 1):
        labels, _ = spectral_clusters(f, n_clusters=n, seed=0)
        ref = SpectralClustering(embedding=EigenDecomposition(n_eigval=n, which='LA'),
                                 clustering=CoRelAyKMeans(n_clusters=n, kwargs=dict(n_init=10, random_state=0)))(f)
        assert adjusted_rand_score(ref, labels) == 1.0, n

# Every learner kind: untrained tiny models, so the clusters mean nothing; what is checked is what a table holds
import matplotlib; matplotlib.use('Agg')
import pandas as pd
from fastai.vision.all import unet_learner
from fastai.text.all import text_classifier_learner, AWD_LSTM
from fastcam.shapes import synth_shapes, shapes_dls
from fastcam.data import synth_reviews, review_dls
from fastcam.core import explains_several
import fastcam.audit

@pytest.fixture(scope='module')
def shapes_path(tmp_path_factory):
    path = tmp_path_factory.mktemp('shapes'); synth_shapes(path, n=48, size=64, seed=3)
    return path

def interp_of(kind, shapes_path):
    set_seed(0)
    if kind == 'multi-label':
        learn = vision_learner(shapes_dls(shapes_path, 'multi-label', bs=8), resnet18, pretrained=False)
        return CAMInterpretation.from_learner(learn, ds_idx=0, layer='0.6', target='all')
    if kind == 'segmentation':
        learn = unet_learner(shapes_dls(shapes_path, 'segmentation', bs=8), resnet18, pretrained=False)
        return CAMInterpretation.from_learner(learn, ds_idx=0, target='all')
    learn = text_classifier_learner(review_dls(synth_reviews(120, seed=1), bs=16), AWD_LSTM, pretrained=False)
    return CAMInterpretation.from_learner(learn, ds_idx=0, target='actual')  # (both classes, whatever it predicts)

@pytest.mark.parametrize('kind', ['multi-label', 'segmentation', 'text'])
def test_every_kind(kind, shapes_path, tmp_path):
    interp = interp_of(kind, shapes_path)
    net = interp.learn.model
    hooks = lambda: sum(len(m._forward_hooks) + len(m._backward_hooks) for m in net.modules())  # a U-Net keeps its own
    flags, n_hooks = [m.training for m in net.modules()], hooks()
    params = [p.detach().clone() for p in net.parameters()]
    table = interp.strategies(n_neighbours=5)
    assert [m.training for m in net.modules()] == flags and torch.is_grad_enabled() and hooks() == n_hooks
    assert all(torch.equal(a, p) for a, p in zip(params, net.parameters()))
    assert list(table.columns[:4]) == ['class', 'cluster', 'items', 'n'] and set(table.verdict) <= {
        'shortcut', 'object-like', 'unclear'}
    assert list(table.n) == sorted(table.n, reverse=True)  # biggest first
    t = interp.cam.targets
    for name, g in table.groupby('class'):
        c = list(map(str, interp.vocab)).index(str(name))
        explained = {i for i in range(len(interp.preds))
                     if (t is None or t[i, c] if explains_several(t) else t[i] == c)}
        assert sorted(i for o in g['items'] for i in o) == sorted(explained)  # each item in one cluster of its class
        assert abs(g.share.sum() - 1) < 1e-9
    r = table.iloc[0]
    if kind == 'text':
        assert isinstance(r.region, list) and all(isinstance(w, str) for w in r.region)
        assert table.transfer.notna().all()  # the carrying tokens pasted into the other class's reviews
    else:
        assert r.region.dtype == torch.bool and tuple(r.region.shape) == (64, 64)
        assert interp.strategy_picture(r).shape == (64, 64, 3)
    again = interp.strategies(n_neighbours=5)  # seeded: the same table
    pd.testing.assert_frame_equal(table.drop(columns='region'), again.drop(columns='region'))
    assert interp.plot_strategies(k=1) is not None
    doc = interp.audit(tmp_path/'audit.html', sanity=False).read_text()
    assert '<h2 id="strategies">Strategies</h2>' in doc and doc.count('class="item strategy"') == len(table)

def test_too_few_and_regression(shapes_path):
    set_seed(0)
    learn = vision_learner(shapes_dls(shapes_path, 'regression', bs=8), resnet18, pretrained=False, n_out=1)
    with pytest.raises(ValueError, match='a regression learner has none'):
        CAMInterpretation.from_learner(learn).strategies()
    interp = interp_of('text', shapes_path)
    with pytest.raises(ValueError, match=r"at least 201 \(n_neighbours \+ 1\) per class; '\w+' has \d+"):
        interp.strategies(n_neighbours=200)
    with pytest.raises(ValueError, match=r"'neutral' is not in dls.vocab"):
        interp.strategies(classes=['neutral'])
    learn = interp.learn
    few = CAMInterpretation.from_learner(learn, dl=learn.dls.test_dl(interp.items_at(list(range(8)))))
    doc = few.audit(Path(tempfile.mkdtemp())/'a.html', sanity=False).read_text()
    assert 'No strategies: strategies() clusters each class' in doc  # the audit says why, and still writes

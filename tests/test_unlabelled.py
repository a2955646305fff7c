"""New items without labels: `CAMInterpretation.from_learner(learn, dl=learn.dls.test_dl(items))` for every learner kind,
checked against a labelled pass over the same items (predictions and maps equal; no targets, no losses); ranking by
doubt, titles with the prediction only, and a clear error for whatever needs labels."""
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt, pytest, torch
from fastai.vision.all import vision_learner, unet_learner, resnet18, set_seed, get_image_files, Learner
from fastai.text.all import text_classifier_learner, AWD_LSTM
from fastcam.callback import CAMCallback
from fastcam.interpret import CAMInterpretation
import fastcam.trust  # noqa: F401 (cam_report, sanity_checks)
from fastcam.shapes import synth_shapes, shapes_dls
from fastcam.data import synth_reviews, review_dls
from conftest import make_dls

@pytest.fixture(scope='module')
def shapes_path(tmp_path_factory):
    path = tmp_path_factory.mktemp('shapes'); synth_shapes(path, n=24, size=64, seed=3)
    return path

def pets(pets_path):
    set_seed(0)
    return vision_learner(make_dls(pets_path, bs=8), resnet18, pretrained=False)

def shapes(path, kind, **kw):
    set_seed(0)
    make = unet_learner if kind == 'segmentation' else vision_learner
    return make(shapes_dls(path, kind, bs=8), resnet18, pretrained=False, **kw)

def text(_):
    set_seed(0)
    return text_classifier_learner(review_dls(synth_reviews(60, seed=1), bs=8), AWD_LSTM, pretrained=False)

KINDS = {'single-label': lambda p, s: pets(p), 'multi-label': lambda p, s: shapes(s, 'multi-label'),
         'segmentation': lambda p, s: shapes(s, 'segmentation'), 'regression': lambda p, s: shapes(s, 'regression', n_out=1),
         'text': lambda p, s: text(p)}

def new_items(learn):
    "The validation items (files, or the rows of a DataFrame), given to test_dl as new items would be: no labels"
    return learn.dls.valid.items

def decided_probability(interp):
    "The model's probability of the decision fastai decoded, per item: the mean over its labels or pixels"
    p, d = interp.preds, interp.decoded
    if d.dtype == torch.bool: return torch.where(d, p, 1 - p).flatten(1).mean(1)  # each label decided on its own
    return p.gather(1, d.long().unsqueeze(1)).flatten(1).mean(1)  # one class per item, or per pixel

def close(a, b):
    if isinstance(a, list):
        for x, y in zip(a, b): torch.testing.assert_close(x, y)
    else: torch.testing.assert_close(a, b)

@pytest.fixture(scope='module', params=list(KINDS))
def pair(request, pets_path, shapes_path):
    "An interpretation of new items without labels, and one of the same items with their labels"
    learn = KINDS[request.param](pets_path, shapes_path)
    items = new_items(learn)
    blind = CAMInterpretation.from_learner(learn, dl=learn.dls.test_dl(items))
    known = CAMInterpretation.from_learner(learn, dl=learn.dls.valid.new(shuffle=False))
    return request.param, blind, known

def test_one_pass_without_labels(pair):
    "Predictions, decoded predictions and maps as with labels; no targets and no losses"
    kind, blind, known = pair
    assert not blind.has_labels and blind.targs is None and blind.losses is None and known.has_labels
    for a, b in ((blind.preds, known.preds), (blind.decoded, known.decoded), (blind.maps, known.maps)): close(a, b)
    assert len(blind.maps) == len(blind.dl.items)

def test_plot_cam_least_sure_first_and_titles(pair):
    "Least sure first by default, most sure with largest=False, idxs= picks; titles carry no label and no loss"
    kind, blind, known = pair
    n = len(blind.preds)
    # no probability for a regression: the largest predictions first; else the least likely decisions first
    doubt = blind.preds[:, 0] if kind == 'regression' else 1 - decided_probability(blind)
    order = doubt.argsort(descending=True).tolist()
    assert blind._ranked(3) == order[:3] and blind._ranked(3, largest=False) == order[::-1][:3]
    for fig in (blind.plot_cam(k=3), blind.plot_cam(idxs=[1, 0])):
        titles = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else '']
        assert titles and not any(w in t.lower() for t in titles for w in ('actual', 'loss'))
        plt.close(fig)
    fig = known.plot_cam(k=2)  # with labels: the actual label or the loss is in the titles
    assert any(w in ax.get_title().lower() or w in fig._suptitle.get_text().lower() for ax in fig.axes
               for w in ('actual', 'loss', ' / '))
    plt.close(fig)

def test_what_needs_labels_says_so(pair):
    kind, blind, known = pair
    for f in (lambda: blind.top_losses(3), lambda: blind.plot_top_losses(3, cam=True),
              lambda: blind.plot_cam(k=2, target='actual')):
        with pytest.raises(ValueError, match='no labels'): f()
    learn = blind.learn
    with pytest.raises(ValueError, match="target='actual'.*no labels"):
        CAMInterpretation.from_learner(learn, dl=learn.dls.test_dl(new_items(learn)), target='actual')
    if kind == 'single-label':
        with pytest.raises(ValueError, match='no labels'): blind.confusion_matrix()

def test_cam_report_without_labels(pets_path):
    "Every cam_report score explains the prediction: the same table for the items with or without their labels"
    learn = pets(pets_path)
    items = new_items(learn)
    blind = CAMInterpretation.from_learner(learn, dl=learn.dls.test_dl(items))
    known = CAMInterpretation.from_learner(learn, dl=learn.dls.valid.new(shuffle=False))
    a, b = (i.cam_report(methods=['gradcam'], max_items=6, steps=4) for i in (blind, known))
    cols = [c for c in a.columns if a[c].dtype.kind == 'f' and c != 'cost']
    torch.testing.assert_close(torch.tensor(a[cols].values), torch.tensor(b[cols].values))
    assert (a.verdict == b.verdict).all()

def test_folder_of_new_images_in_one_call(pets_path, tmp_path):
    "The README's question: why did the model say that about these new photos? Files named in no particular way"
    learn = pets(pets_path)
    files = get_image_files(pets_path)[:5]
    for i, f in enumerate(files): (tmp_path/f"photo_{i}.jpg").write_bytes(f.read_bytes())
    interp = CAMInterpretation.from_learner(learn, dl=learn.dls.test_dl(get_image_files(tmp_path)))
    fig = interp.plot_cam()
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 5 and all(t.split(' / ')[0] in ('True', 'False') for t in titles)  # prediction / probability
    originals = [files[int(f.stem.split('_')[1])] for f in interp.dl.items]  # each photo's original, in its order
    torch.testing.assert_close(interp.preds, learn.get_preds(dl=learn.dls.test_dl(originals))[0])
    plt.close(fig)

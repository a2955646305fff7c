"""CAMMonitor: training untouched to the bit (weights, BatchNorm statistics, losses, RNG), maps only kept, a ViT
learner, the TensorBoard figure read back from the event file, and the pets recipe's --monitor."""
import json, sys
import pytest, torch
from fastai.vision.all import vision_learner, resnet18, set_seed, ImageDataLoaders, get_image_files, Resize
from fastcam.monitor import CAMMonitor
from fastcam.data import is_cat
from conftest import make_dls

def fit(pets_path, cbs=None, epochs=2):
    set_seed(0)
    learn = vision_learner(make_dls(pets_path, bs=8), resnet18, pretrained=False)
    learn.fit_one_cycle(epochs, 1e-3, cbs=cbs)
    return learn

def test_training_bit_identical_and_rng(pets_path):
    ref = fit(pets_path)
    after_ref = torch.rand(3)  # the global RNG state once fit is done
    mon = CAMMonitor(make_dls(pets_path).valid_ds.items[:3], layer='0.6')
    got = fit(pets_path, mon)
    assert torch.equal(torch.rand(3), after_ref)
    for (k, a), b in zip(ref.model.state_dict().items(), got.model.state_dict().values()): assert torch.equal(a, b), k
    assert ref.recorder.losses == got.recorder.losses and ref.recorder.values == got.recorder.values
    assert mon.history.shape == (3, 3, 4, 4) and mon.history.dtype == torch.float32 and mon.history.device.type == 'cpu'
    assert all(p.grad is None or not p.grad.requires_grad for p in got.model.parameters())
    assert [len(p) for p in mon.probs] == [3, 3, 3] and all(isinstance(m, torch.Tensor) and not m.requires_grad
                                                            for m in mon.maps)

def test_every_and_items_without_labels(pets_path):
    from fastai.vision.all import PILImage
    images = [PILImage.create(o) for o in make_dls(pets_path).valid_ds.items[:2]]  # no file names: no labels
    mon = CAMMonitor(images, every=2, target='pred', layer='0.6')
    fit(pets_path, mon, epochs=3)
    assert mon.epochs == [0, 2] and mon.history.shape == (2, 2, 4, 4)
    with pytest.raises(ValueError, match="needs items with labels"):
        fit(pets_path, CAMMonitor(images, target='actual'), epochs=1)

def test_vit_learner(pets_path):
    import timm
    set_seed(0)
    dls = ImageDataLoaders.from_name_func(pets_path, get_image_files(pets_path), valid_pct=0.25, seed=21,
                                          label_func=is_cat, item_tfms=Resize(224), bs=8, num_workers=0)
    learn = vision_learner(dls, 'vit_tiny_patch16_224', pretrained=False)
    mon = CAMMonitor(dls.valid_ds.items[:2])
    learn.fit(1, 1e-4, cbs=mon)
    assert mon.history.shape == (2, 2, 14, 14)

def test_tensorboard_figure_read_back(pets_path, tmp_path):
    import tensorboard
    from fastai.callback.tensorboard import TensorBoardCallback
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tb = TensorBoardCallback(tmp_path/'tb', trace_model=False, log_preds=False)
    fit(pets_path, [tb, CAMMonitor(make_dls(pets_path).valid_ds.items[:2], layer='0.6')], epochs=2)
    ea = EventAccumulator(str(tmp_path/'tb'), size_guidance={'images': 0}); ea.Reload()
    assert 'fastcam/cam_history' in ea.Tags()['images']
    assert [e.step for e in ea.Images('fastcam/cam_history')] == [0, 1, 2]

def test_no_tensorboard_import_without_it(pets_path):
    import subprocess
    code = ("import sys; sys.path.insert(0, 'tests'); from conftest import *; from fastcam.monitor import CAMMonitor; "
            "import tempfile; from fastcam.data import synth_pets; p = synth_pets(tempfile.mkdtemp(), n=16, size=32); "
            "fit = __import__('test_monitor').fit; fit(p, CAMMonitor(make_dls(p).valid_ds.items[:1], layer='0.6'), 1); "
            "print('tensorboard' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    assert r.stdout.strip().splitlines()[-1] == 'False'

def test_pets_recipe_monitor(tmp_path):
    from fastcam.pets import pets_recipe
    from fastcam.data import synth_pets
    imgs = synth_pets(tmp_path/'data', n=32, size=64)
    learn, interp, m = pets_recipe(imgs, tmp_path/'out', 'resnet18', 2, 64, 8, False, '0.6', num_workers=0, monitor=3)
    for f in ('monitor.png', 'monitor/cam_history.gif', 'monitor/epoch_002.png'): assert (tmp_path/'out'/f).stat().st_size
    assert json.loads((tmp_path/'out'/'metrics.json').read_text())['monitor'] == 3
    assert not any(type(cb).__name__ == 'CAMMonitor' for cb in learn.cbs)

def test_text_learner():
    "A text classifier: one map per review over its own tokens, per record, in the order the reviews were given"
    from fastai.text.all import text_classifier_learner, AWD_LSTM
    from fastcam.data import synth_reviews, review_dls
    set_seed(0)
    learn = text_classifier_learner(review_dls(synth_reviews(80, seed=2), bs=16), AWD_LSTM, pretrained=False)
    reviews = ['a superb film', 'the plot was really quite dull and the actors boring']
    mon = CAMMonitor(reviews, target='pred')
    learn.fit(1, 1e-3, cbs=mon)
    assert mon.epochs == [0, 1] and len(mon.history) == 2
    assert [len(m) for m in mon.history[1]] == [len(learn.dls.test_dl([r]).one_batch()[0][0]) for r in reviews]
    assert [str(o).split(' ')[2] for o in mon._images] == ['superb', 'plot']  # xxbos, xxmaj or the first word
    fig = mon.plot_history()
    assert any('superb' == t.get_text() for ax in fig.axes for t in ax.texts)

def test_text_longer_than_one_bptt_chunk():
    "Reviews longer than bptt (72 tokens) run in fastai's length-sorted order; maps come back in the given order"
    from fastai.text.all import text_classifier_learner, AWD_LSTM
    from fastcam.data import synth_reviews, review_dls
    set_seed(0)
    learn = text_classifier_learner(review_dls(synth_reviews(80, seed=2), bs=16), AWD_LSTM, pretrained=False)
    reviews = ['a superb film', ' '.join(['the plot'] * 60) + ' dull']
    mon = CAMMonitor(reviews, target='pred')
    learn.fit(1, 1e-3, cbs=mon)
    lens = [len(learn.dls.test_dl([r]).one_batch()[0][0]) for r in reviews]
    assert lens[1] > 72 and [len(m) for m in mon.history[-1]] == lens

def test_any_model_located_layer(pets_path):
    """A plain Sequential: the monitor records the maps of the layer the dry forward finds (the second ReLU), and the
    training is the same as without it"""
    import torch.nn as nn
    from fastai.vision.all import Learner, CrossEntropyLossFlat
    def plain():
        set_seed(0)
        return Learner(make_dls(pets_path, bs=8), nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2)), loss_func=CrossEntropyLossFlat())
    ref = plain(); ref.fit(1, 1e-3)
    mon = CAMMonitor(make_dls(pets_path).valid_ds.items[:2])
    got = plain(); got.fit(1, 1e-3, cbs=mon)
    assert mon.cam.layer_name == '3' and mon.history.shape == (2, 2, 32, 32)  # 64-pixel inputs
    assert ref.recorder.losses == got.recorder.losses

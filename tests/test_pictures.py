"Pictures: maps land where they belong (read back as pixels), titles use the vocab, one map whatever the entry point."
import matplotlib; matplotlib.use('Agg')
import numpy as np, pytest, torch
from fastai.vision.all import ImageDataLoaders, get_image_files, Resize, vision_learner, resnet18, set_seed, TensorImage
from fastcam.data import is_cat
from fastcam.interpret import CAMInterpretation
from fastcam.show import show_cam_overlay
from conftest import panel, hot_top_left, assert_top_left_hot

@pytest.mark.parametrize('hw', [(64, 64), (96, 160), (160, 96)])
def test_overlay_alignment(hw):
    import matplotlib.pyplot as plt
    h, w = hw
    fig, ax = plt.subplots(figsize=(4, 4))
    show_cam_overlay(TensorImage(torch.full((3, h, w), .5)), hot_top_left(4, 6), ax=ax)
    px = panel(fig, ax)
    assert abs(px.shape[1] / px.shape[0] - w / h) < 0.05  # the image keeps its aspect ratio
    assert_top_left_hot(px)
    plt.close(fig)

@pytest.fixture(scope='module')
def wide_interp(pets_path):
    "A learner on non-square 96x160 inputs"
    set_seed(0)
    dls = ImageDataLoaders.from_name_func(pets_path, get_image_files(pets_path), valid_pct=0.25, seed=21,
                                          label_func=is_cat, item_tfms=Resize((96, 160), method='squish'), bs=8,
                                          num_workers=0)
    learn = vision_learner(dls, resnet18, pretrained=False)
    return CAMInterpretation.from_learner(learn, layer='0.6')

def test_plot_cam_alignment_non_square(wide_interp):
    interp = wide_interp
    assert interp.maps.shape[-2:] == (6, 10)
    real = interp.cam.maps
    interp.cam.maps = hot_top_left(6, 10).expand(len(real), 6, 10).clone()
    try:
        fig = interp.plot_cam(k=2)
        axs = [ax for ax in fig.axes if ax.images]
        assert len(axs) == 2
        for ax in axs:
            px = panel(fig, ax)
            assert abs(px.shape[1] / px.shape[0] - 160 / 96) < 0.05
            assert_top_left_hot(px)
    finally: interp.cam.maps = real

def test_titles_k_and_target_by_label(trained):
    interp = CAMInterpretation.from_learner(trained)
    vocab = [str(v) for v in interp.vocab]
    fig = interp.plot_cam(k=4)
    axs = [ax for ax in fig.axes if ax.images]
    assert len(axs) == 4
    for ax, i in zip(axs, interp.top_losses(4)[1]):
        pred, actual = ax.get_title().split(' / ')[0].split('/')
        assert pred == vocab[interp.decoded[i]] and actual == vocab[interp.targs[i]]
    by_label = interp.item_maps([0, 1, 2], target=True)
    by_index = interp.item_maps([0, 1, 2], target=1)
    torch.testing.assert_close(by_label, by_index)
    with pytest.raises(ValueError, match=r"not in dls.vocab \[False, True\]"): interp.plot_cam(target='dog')
    n = len(interp.losses)  # a validation set smaller than the default k = 9 draws every item, as fastai does
    assert len([ax for ax in interp.plot_cam(k=n + 5).axes if ax.images]) == n

def test_plot_cam_map_equals_show_cam(trained):
    interp = CAMInterpretation.from_learner(trained, layer='0.6', method='gradcam++')
    for i in (0, 3):
        label, probs, m = trained.show_cam(interp.dl.items[i], layer='0.6', method='gradcam++')
        torch.testing.assert_close(m, interp.item_maps([i])[0], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(probs, interp.preds[i], rtol=1e-5, atol=1e-6)

def test_interpretation_api_still_works(trained):
    interp = CAMInterpretation.from_learner(trained)
    cm = interp.confusion_matrix()
    assert cm.sum() == len(trained.dls.valid_ds)
    from fastai.interpret import ClassificationInterpretation
    ref = ClassificationInterpretation.from_learner(trained)
    np.testing.assert_array_equal(cm, ref.confusion_matrix())
    assert interp.most_confused() == ref.most_confused()
    torch.testing.assert_close(interp.top_losses(3), ref.top_losses(3))
    interp.plot_top_losses(2)
    interp.plot_top_losses(2, cam=True)
    interp.plot_confusion_matrix()

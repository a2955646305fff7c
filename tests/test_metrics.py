"Metrics against hand-computed values and through the fastai entry point, and their bad inputs."
import pytest, torch, torch.nn as nn
from captum.attr import LayerGradCam
from conftest import hand_pointing_game
from fastcam.hooks import cam_maps
from fastcam.metrics import pointing_game, energy_pointing_game, deletion_auc, insertion_auc, average_drop, increase_in_confidence, perturbation_curves
from fastcam.interpret import CAMInterpretation
import fastcam.trust  # noqa: F401 (cam_report, sanity_checks)
from fastcam.data import item_boxes

def test_pointing_game_masks_and_boxes_agree():
    maps = torch.rand(5, 4, 4)
    boxes = torch.tensor([[0, 0, 16, 16], [16, 16, 32, 32], [0, 16, 16, 32], [8, 8, 24, 24], [0, 0, 32, 32]])
    masks = torch.zeros(5, 32, 32, dtype=torch.bool)
    for m, (x0, y0, x1, y1) in zip(masks, boxes.tolist()): m[y0:y1, x0:x1] = True
    torch.testing.assert_close(pointing_game(maps, boxes, (32, 32)), pointing_game(maps, masks))
    torch.testing.assert_close(energy_pointing_game(maps, boxes, (32, 32)), energy_pointing_game(maps, masks))
    assert pointing_game(maps, boxes, (32, 32))[-1] == 1 and energy_pointing_game(maps, boxes, (32, 32))[-1] == 1

def test_energy_share_by_hand():
    maps = torch.tensor([[[1., 3.], [0., 2.]]])  # normalised: 1/3, 1, 0, 2/3
    mask = torch.tensor([[[True, True], [False, False]]])
    torch.testing.assert_close(energy_pointing_game(maps, mask), torch.tensor([(1 / 3 + 1) / 2]))

@pytest.mark.parametrize('gt, size, msg', [
    (torch.zeros(4, 3), (8, 8), r'boxes \(n, 4\) or masks'),
    (torch.tensor([[0, 0, 4, 4]] * 3), (8, 8), 'for 3 items but 2 maps'),
    (torch.tensor([[0, 0, 9, 4]] * 2), (8, 8), r'x0 < x1 <= 8'),
    (torch.tensor([[-1, 0, 4, 4]] * 2), (8, 8), r'0 <= x0'),
    (torch.tensor([[0, 0, 4, 4]] * 2), None, r'pass size=\(H, W\)'),
    (torch.ones(2, 7, 8), (8, 8), "input's size")])
def test_bad_ground_truth(gt, size, msg):
    with pytest.raises(ValueError, match=msg): pointing_game(torch.rand(2, 2, 2), gt, size)

def test_faithfulness_on_region_model():
    "Output depends on the centre region only: a map on it beats its inverse on every metric"
    class Centre(nn.Module):
        def forward(self, x): return torch.stack([torch.zeros(len(x)), 3 * x[:, :, 4:8, 4:8].mean((1, 2, 3))], 1)
    x = torch.rand(4, 3, 12, 12); x[:, :, 4:8, 4:8] += 2
    good = torch.zeros(4, 3, 3); good[:, 1, 1] = 1  # one hot cell at the centre, 3x3 map: upsampled inside the model
    bad = 1 - good
    assert (deletion_auc(Centre(), x, good, 1) < deletion_auc(Centre(), x, bad, 1)).all()
    assert (insertion_auc(Centre(), x, good, 1) > insertion_auc(Centre(), x, bad, 1)).all()
    assert (average_drop(Centre(), x, good, 1) < average_drop(Centre(), x, bad, 1)).all()
    c = perturbation_curves(Centre(), x, good, 1, steps=3, baseline='zero', batch_size=3)
    torch.testing.assert_close(c[:, 0], Centre()(x).softmax(-1)[:, 1])  # step 0 is the untouched input
    with pytest.raises(ValueError, match="not 'all'"): deletion_auc(Centre(), x, good, 'all')
    with pytest.raises(ValueError, match='one map per input'): deletion_auc(Centre(), x, good[:2], 1)

def test_cam_report_on_learner(trained):
    interp = CAMInterpretation.from_learner(trained, layer='0.6')
    boxes = item_boxes(interp.dl.items)
    df = interp.cam_report(methods=['gradcam', 'eigencam'], boxes=boxes, max_items=4, steps=4).set_index('method')
    assert sorted(df.index) == ['eigencam', 'gradcam']
    assert {'deletion_auc', 'insertion_auc', 'average_drop', 'increase_in_confidence', 'pointing_game',
            'energy_pointing_game', 'cost', 'verdict', 'rank'} <= set(df.columns)
    x = torch.cat([b[0] for b in trained.dls.test_dl(interp.dl.items[:4], with_labels=True)]).as_subclass(torch.Tensor)
    model = trained.model.eval()
    with torch.no_grad(): t = model(x).argmax(1)  # the 'top' class cam_report explains
    maps = LayerGradCam(model, model[0][6]).attribute(x, target=t, relu_attributions=True)[:, 0].detach()  # captum's
    hand = hand_pointing_game(maps, boxes[:4], x.shape[-2:]).mean().item()
    assert df.loc['gradcam', 'pointing_game'] == pytest.approx(hand)
    assert 'pointing_game' not in interp.cam_report(methods=['gradcam'], max_items=2, steps=2).columns
    fig = interp.plot_report_curves()
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match='one per item'): interp.cam_report(boxes=boxes[:3])
    with pytest.raises(ValueError, match='baseline'): interp.cam_report(baseline='noise')
    with pytest.raises(ValueError, match="input's size"): interp.cam_report(methods=['gradcam'],
                                                                          boxes=torch.ones(len(boxes), 5, 5))

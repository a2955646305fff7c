"fastcam-pets: a smoke run, the 'PETS unreachable' message, bad input, and real-PETS trimaps on a tiny fake folder."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from fastcam.pets import pets_cli, pets_recipe
from fastcam.data import synth_pets

CLI = Path(sys.executable).parent/'fastcam-pets'

def run_cli(*args, env=None, timeout=300):
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})

def test_smoke_synthetic(tmp_path):
    r = run_cli('--synthetic', '--out', tmp_path, '--n', 32, '--size', 64, '--epochs', 1, '--bs', 8)
    assert r.returncode == 0, r.stderr[-2000:]
    for f in ('learner.pkl', 'cam_gallery.png', 'layers.png', 'metrics.json', 'audit.html', 'app.py', 'requirements.txt'):
        assert (tmp_path/f).stat().st_size > 0
    m = json.loads((tmp_path/'metrics.json').read_text())
    assert {'error_rate', 'accuracy', 'pointing_game', 'energy_pointing_game', 'layer', 'method', 'arch'} <= set(m)
    assert m['layer'] == '0.6' and m['arch'] == 'resnet18' and m['ground_truth'] == 'boxes'
    assert 'pointing game' in r.stdout and 'error_rate' in r.stdout
    # the figures, worked out here from the exported learner: predictions, Grad-CAM by captum, the boxes' file
    err, pg = by_hand(tmp_path)
    assert m['error_rate'] == pytest.approx(err, abs=1e-6) and m['pointing_game'] == pytest.approx(pg, abs=1e-6)
    # stdout is not a terminal here: fastai's Recorder table, one line per epoch, and no progress-bar redraws
    assert '\r' not in r.stdout and '%' not in r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].split() == ['epoch', 'train_loss', 'valid_loss', 'error_rate', 'time']
    assert lines[1].split()[0] == '0' and len(lines) == 1 + 1 + 6  # header, one epoch, the summary
    from fastai.learner import load_learner
    assert 'EpochLines' not in str(load_learner(tmp_path/'learner.pkl').cbs)  # the export has fastai's own bars

def by_hand(out, size=64):
    """Error rate and pointing game of the recipe's validation items, from `out/learner.pkl` and `out/data`: fastai's
    split (seed 21), predictions of the loaded model, captum's Grad-CAM at `model[0][-2]` upsampled bilinearly, and
    whether its maximum falls in the object's box of `boxes.json`"""
    import torch, torch.nn.functional as F
    from captum.attr import LayerGradCam
    from fastai.learner import load_learner
    from fastai.vision.all import ImageDataLoaders, get_image_files, Resize
    learn = load_learner(out/'learner.pkl')
    dls = ImageDataLoaders.from_name_func(out/'data', get_image_files(out/'data'), valid_pct=0.2, seed=21,
                                          label_func=lambda name: 'cat' if name[0].isupper() else 'dog',
                                          item_tfms=Resize(size), bs=8, num_workers=0)
    items = dls.valid_ds.items
    xs, ys = map(torch.cat, zip(*[(x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor)) for x, y in dls.valid]))
    model = learn.model.eval()
    with torch.no_grad(): pred = model(xs).argmax(1)
    labels = [learn.dls.vocab.o2i[dls.vocab[int(y)]] for y in ys]  # (both vocabs are ['cat', 'dog'])
    err = (pred != torch.tensor(labels)).float().mean().item()
    maps = LayerGradCam(model, model[0][-2]).attribute(xs, target=pred, relu_attributions=True)
    up = F.interpolate(maps.detach(), size=(size, size), mode='bilinear', align_corners=False)[:, 0].flatten(1)
    boxes = json.loads((Path(items[0]).parent/'boxes.json').read_text())
    hits = []
    for f, i in zip(items, up.argmax(1).tolist()):
        x0, y0, x1, y1 = boxes[Path(f).name]
        hits.append(x0 <= i % size < x1 and y0 <= i // size < y1)  # boxes end before x1, y1
    return err, sum(hits) / len(hits)

def test_pets_unreachable(tmp_path):
    "No cache (a fresh FASTAI_HOME) and no network: one clear line, exit 2, no traceback"
    r = run_cli('--out', tmp_path/'out', env=dict(FASTAI_HOME=str(tmp_path/'fastai_home')), timeout=120)
    assert r.returncode == 2
    assert 'Traceback' not in r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith('fastcam-pets: error: Could not get PETS')
    assert str(tmp_path/'fastai_home') in err and '--path DIR' in err and '--synthetic' in err

def cli_error(capsys, **kw):
    with pytest.raises(SystemExit) as e: pets_cli.__wrapped__(**kw)
    assert e.value.code == 2
    return capsys.readouterr().err

@pytest.fixture(scope='module')
def small_pets(tmp_path_factory): return synth_pets(tmp_path_factory.mktemp('small'), n=12, size=32)

def test_bad_paths(tmp_path, capsys):
    assert 'is not a folder' in cli_error(capsys, path=str(tmp_path/'missing'), out=str(tmp_path))
    (tmp_path/'empty').mkdir()
    assert 'No image files' in cli_error(capsys, path=str(tmp_path/'empty'), out=str(tmp_path))
    (tmp_path/'txt').mkdir(); (tmp_path/'txt'/'notes.txt').write_text('hi')
    assert 'No image files' in cli_error(capsys, path=str(tmp_path/'txt'), out=str(tmp_path))
    (tmp_path/'cats').mkdir()
    for i in range(3): Image.new('RGB', (8, 8)).save(tmp_path/'cats'/f'Bengal_{i}.png')
    assert 'labels all 3 images' in cli_error(capsys, path=str(tmp_path/'cats'), out=str(tmp_path))
    assert 'not both' in cli_error(capsys, path=str(tmp_path/'cats'), synthetic=True, out=str(tmp_path))

@pytest.mark.parametrize('kw, msg', [(dict(arch='resnet35'), "Unknown --arch 'resnet35'"),
                                     (dict(layer='0.99'), "--layer: Unknown layer name '0.99'"),
                                     (dict(method='gradcam+'), "--method: Unknown method 'gradcam+'")])
def test_bad_arch_layer_method(small_pets, tmp_path, capsys, kw, msg):
    err = cli_error(capsys, path=str(small_pets), out=str(tmp_path), size=32, pretrained=False, **kw)
    assert msg in err and 'Traceback' not in err

def test_trimaps_scored(tmp_path):
    "A tiny fake PETS folder with trimaps: the maps are scored against them"
    rng = np.random.default_rng(0)
    (tmp_path/'images').mkdir(); (tmp_path/'annotations'/'trimaps').mkdir(parents=True)
    for i in range(16):
        name = f"{'Bengal' if i % 2 else 'beagle'}_{i}"
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path/'images'/f'{name}.jpg')
        tri = np.full((40, 48), 2, np.uint8); tri[10:30, 12:36] = 1; tri[9, 12:36] = 3
        Image.fromarray(tri).save(tmp_path/'annotations'/'trimaps'/f'{name}.png')
    learn, interp, m = pets_recipe(tmp_path/'images', tmp_path/'out', 'resnet18', 1, 32, 8, False, '0.6',
                                   num_workers=0)
    assert m['ground_truth'] == 'trimaps'
    # by hand: each trimap's centre square resized to the input (nearest), the pet and its border (not 2) the object;
    # the maximum of each map upsampled bilinearly to the input
    import torch, torch.nn.functional as F
    up = F.interpolate(interp.maps[:, None].float(), size=(32, 32), mode='bilinear', align_corners=False)[:, 0]
    hits, energy = [], []
    for f, u in zip(interp.dl.items, up):
        tri = Image.open(tmp_path/'annotations'/'trimaps'/f'{Path(f).stem}.png')
        side = min(tri.size); left, top = (tri.size[0] - side) // 2, (tri.size[1] - side) // 2
        square = tri.crop((left, top, left + side, top + side)).resize((32, 32), Image.NEAREST)
        mask = torch.from_numpy(np.asarray(square) != 2)
        hits.append(float(mask.flatten()[u.argmax()]))
        n = (u - u.min()) / (u.max() - u.min()) if u.max() > u.min() else torch.zeros_like(u)
        energy.append(float((n * mask).sum() / n.sum()) if n.sum() > 0 else 0.)
    assert m['pointing_game'] == pytest.approx(sum(hits) / len(hits), abs=1e-6)
    assert m['energy_pointing_game'] == pytest.approx(sum(energy) / len(energy), abs=1e-5)
    assert json.loads((tmp_path/'out'/'metrics.json').read_text())['pointing_game'] == m['pointing_game']

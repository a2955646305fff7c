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
    assert 0 <= m['pointing_game'] <= 1 and 0 <= m['error_rate'] <= 1
    assert 'pointing game' in r.stdout and 'error_rate' in r.stdout
    # stdout is not a terminal here: fastai's Recorder table, one line per epoch, and no progress-bar redraws
    assert '\r' not in r.stdout and '%' not in r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].split() == ['epoch', 'train_loss', 'valid_loss', 'error_rate', 'time']
    assert lines[1].split()[0] == '0' and len(lines) == 1 + 1 + 6  # header, one epoch, the summary
    from fastai.learner import load_learner
    assert 'EpochLines' not in str(load_learner(tmp_path/'learner.pkl').cbs)  # the export has fastai's own bars

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
    assert m['ground_truth'] == 'trimaps' and 0 <= m['pointing_game'] <= 1 and 0 <= m['energy_pointing_game'] <= 1
    assert json.loads((tmp_path/'out'/'metrics.json').read_text())['pointing_game'] == m['pointing_game']

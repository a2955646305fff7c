"""fastai's distributed `get_preds` (accelerate, DistributedDataParallel) on 2 CPU processes launched with torchrun (gloo):
`learn.cam.*` gathered from both ranks and aligned with fastai's own predictions, `CAMInterpretation` and the README's
script in dataset order, each equal item by item to a single-process run of the same worker. Without distribution
nothing imports accelerate."""
import os, signal, socket, subprocess, sys
from pathlib import Path
import pytest, torch

import accelerate
ROOT = Path(__file__).parents[1]
WORKER, SCRIPT = ROOT/'tests'/'distributed_worker.py', ROOT/'examples'/'distributed_cams.py'
TIMEOUT = 240  # seconds: a hung rank (a collective one rank never joins) must fail the test, not hang CI

def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def start(cmd, cwd=None):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
                            start_new_session=True)  # its own process group: a timeout kills the ranks too

def finish(p, what):
    try: out, _ = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail(f"{what} did not finish in {TIMEOUT} s: {p.communicate()[0][-3000:]}")
    assert p.returncode == 0, f"{what} failed:\n{out[-5000:]}"

def torchrun(*args):
    return [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1', '--nproc_per_node', '2',
            '--master_addr', '127.0.0.1', '--master_port', str(free_port()), *args]

def readme_command(out):
    "The README's torchrun line for the script, as a reader runs it, writing to `out`"
    line = next(l for l in (ROOT/'README.md').read_text().splitlines() if l.startswith('torchrun '))
    cmd = line.split('#')[0].split()
    assert cmd[:2] == ['torchrun', '--nproc_per_node'] and cmd[2] == '2' and cmd[-2] == '--out', cmd
    return torchrun(*cmd[3:-1], str(out))

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Results of the 2 ranks and of the single-process reference; the README's command and its one-process twin"
    out = tmp_path_factory.mktemp('distributed')
    for cmds in ({'The 2-process torchrun of the worker': (torchrun(str(WORKER), str(out)), None),
                  'The single-process run of the worker': ([sys.executable, str(WORKER), str(out)], None)},
                 {"The README's torchrun command": (readme_command(out/'cams.pt'), ROOT),
                  'The script on one process': ([sys.executable, str(SCRIPT), '--out', str(out/'single_cams.pt')], None)}):
        procs = {what: start(cmd, cwd) for what, (cmd, cwd) in cmds.items()}  # two at a time, one per core
        try:
            for what, p in procs.items(): finish(p, what)
        finally:  # a failed one leaves no process of the other behind
            for p in procs.values():
                if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    load = lambda name: torch.load(out/name, weights_only=False)
    return load('single.pt'), [load('rank0.pt'), load('rank1.pt')], out

def close(a, b, what):
    "Equal item by item: tensors to 1e-5, lists of per-item maps (text) each to 1e-5, anything else exactly"
    if isinstance(a, list) and a and isinstance(a[0], torch.Tensor):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)): torch.testing.assert_close(x, y, atol=1e-5, rtol=0, msg=f"{what}[{i}]")
    elif isinstance(a, torch.Tensor): torch.testing.assert_close(a.float(), b.float(), atol=1e-5, rtol=0, msg=what)
    else: assert a == b, what

def test_fastai_interleaves_and_cam_follows(runs):
    "11 items, 2 per batch, 2 ranks: fastai returns the ranks' batches interleaved, and learn.cam.maps alike"
    single, ranks, _ = runs
    test_eq = lambda a, b: torch.testing.assert_close(a, b)
    test_eq(single['get_preds']['item_idxs'], torch.arange(11))
    for r in ranks:  # rank 0 reads items 0-5, rank 1 items 6-10 and item 0 again as padding, which is dropped
        test_eq(r['get_preds']['item_idxs'], torch.tensor([0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10]))

def test_learn_cam_aligned_with_fastai_predictions(runs):
    "On every rank, one map per item, in the order of fastai's own predictions; equal to the single-process maps"
    single, ranks, _ = runs
    s = single['get_preds']
    # (64 px: the default is the stage with 16x16 maps, `MIN_SIDE`; the body's would be 2x2. Untrained, most of its
    # Grad-CAM maps are zero after the ReLU: a few are not, so the comparisons below are not of blanks only)
    assert s['maps'].shape == (11, 16, 16) and s['maps'].flatten(1).amax(1).gt(0).sum() >= 3
    for rank, r in enumerate(ranks):
        g = r['get_preds']
        assert g['untouched'], f"rank {rank}: predictions, targets or losses differ from a pass without CAMCallback"
        o = g['item_idxs'].argsort()
        for k in ('preds', 'targs', 'maps', 'targets'): close(g[k][o], s[k], f"rank {rank} {k}")

@pytest.mark.parametrize('what', ['script', 'unlabelled', 'text gradcam', 'text intgrad'])
def test_interpretation_in_dataset_order(runs, what):
    "CAMInterpretation.from_learner under distrib_ctx: predictions, targets, losses and maps as a single process has them"
    single, ranks, _ = runs
    for rank, r in enumerate(ranks):
        for k, v in single[what].items():
            if k == 'items': v, r[what][k] = [Path(o).name for o in v], [Path(o).name for o in r[what][k]]
            close(r[what][k], v, f"rank {rank} {what} {k}")
    if what == 'unlabelled': assert single[what]['targs'] is None and single[what]['losses'] is None
    if what.startswith('text'):  # one map per review, each over its own tokens: padding to gather, then dropped again
        assert len({len(m) for m in single[what]['maps']}) > 1

def test_readme_command_writes_one_file_on_rank_0(runs):
    "The README's torchrun command: `torch.load` of the file rank 0 wrote gives what one process computes"
    _, _, out = runs
    got, ref = (torch.load(out/name, weights_only=False) for name in ('cams.pt', 'single_cams.pt'))
    assert got['layer'] == '0.4' and got['vocab'] == [False, True]  # (64 px: the default is the stage with 16x16 maps)
    assert len(got['maps']) == len(ref['items']) == 100
    for k, v in ref.items():
        if k == 'items': v, got[k] = [Path(o).name for o in v], [Path(o).name for o in got[k]]
        close(got[k], v, f"file {k}")

def test_no_accelerate_without_distribution():
    "Maps, interpretation and plots on one process import neither accelerate nor fastai.distributed"
    code = ("import sys, tempfile\nfrom fastai.vision.all import *\nfrom fastcam.all import *\n"
            "path = synth_pets(tempfile.mkdtemp(), n=8, size=32)\n"
            "dls = ImageDataLoaders.from_name_func(path, get_image_files(path), label_func=is_cat, bs=4, num_workers=0)\n"
            "learn = vision_learner(dls, resnet18, pretrained=False)\n"
            "CAMInterpretation.from_learner(learn).plot_cam(k=2)\n"
            "print('accelerate' in sys.modules, 'fastai.distributed' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-2:] == ['False', 'False']

def test_script_with_an_exported_learner_and_new_images(pets_path, tmp_path):
    "--model and --path on one process: an exported learner explains a folder of new images, without labels"
    import runpy
    from fastai.vision.all import vision_learner, resnet18, get_image_files, load_learner
    from conftest import make_dls
    learn = vision_learner(make_dls(pets_path, bs=8), resnet18, pretrained=False)
    learn.export(tmp_path/'model.pkl')
    new = tmp_path/'new'; new.mkdir()
    for i, f in enumerate(get_image_files(pets_path)[:5]): (new/f'photo_{i}.jpg').write_bytes(f.read_bytes())
    res = runpy.run_path(str(SCRIPT))['main'](model=str(tmp_path/'model.pkl'), path=str(new), out=str(tmp_path/'c.pt'),
                                              cpu=True)
    assert torch.load(tmp_path/'c.pt', weights_only=False)['items'] == res['items'] == [str(o) for o in
                                                                                        get_image_files(new)]
    assert res['targs'] is None and res['losses'] is None and res['maps'].shape == (5, 16, 16)  # 64 px: model[0][4]
    ref = load_learner(tmp_path/'model.pkl').get_preds(dl=learn.dls.test_dl(get_image_files(new)))[0]
    close(res['preds'], ref, 'preds')

"""Every image method of fastcam next to pytorch-grad-cam's and torchcam's class for the same method, in one run:
time per batch of maps ÷ a plain forward, and peak memory ÷ plain inference.

    python benchmarks/bench_methods.py                 # writes benchmarks/METHODS.md and benchmarks/methods.json
    python benchmarks/bench_methods.py --smoke         # tiny sizes, one repeat: keeps the script working (CI)
    python benchmarks/bench_methods.py --device cuda   # the same on a GPU (memory: torch's peak allocated)
"""
from __future__ import annotations
import argparse, copy, json, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import torch
from fastai.vision.all import create_vision_model, resnet34, resnet18, resnet50, set_seed
sys.path.insert(0, str(Path(__file__).parent))
from bench_cam import paired, _status, SEED, THREADS
from render import fmt, provenance, render_methods
from fastcam.hooks import cam_maps
from fastcam.methods import CAM_METHODS, ATTENTION_METHODS, get_method, register_method, CAMMethod, _cam
from fastcam.perturb import sscam_weights, iscam_weights

PERTURB = ('scorecam', 'sscam', 'iscam', 'ablationcam')
VIT_ROWS = ('gradcam@vit', *ATTENTION_METHODS)  # on a ViT-S/16: Grad-CAM at the last block's norm, the attention methods
LEAN = ('gradrollout@lean', 'legrad@lean')  # fastcam's lean replay, one block's graph at a time (`memory='lean'`)
# How the cost grows: with the masked-input batch size, and with the channels (resnet50's third stage: 1024, at
# 224 px; one timed call per library, each a thousand forwards)
SCALE = ('scorecam@bs16', 'scorecam@bs256', 'scorecam@resnet50', 'ablationcam@resnet50')
SMOKE = ('gradcam', 'ablationcam', 'guidedgradcam', 'gradcam@vit', 'legrad', 'legrad@lean', 'scorecam@bs256')  # each path
SAMPLES = 5  # SS-CAM's and IS-CAM's samples here (35 and 10 by default), the same for torchcam: a CPU cannot do more
PGC = {'gradcam': 'GradCAM', 'hirescam': 'HiResCAM', 'gradcam++': 'GradCAMPlusPlus', 'xgradcam': 'XGradCAM',
       'layercam': 'LayerCAM', 'eigencam': 'EigenCAM', 'gradcamelementwise': 'GradCAMElementWise',
       'eigengradcam': 'EigenGradCAM', 'kpcacam': 'KPCA_CAM', 'fem': 'FEM', 'randomcam': 'RandomCAM',
       'scorecam': 'ScoreCAM', 'ablationcam': 'AblationCAM', 'segeigencam': 'SegEigenCAM', 'shapleycam': 'ShapleyCAM',
       'finercam': 'FinerCAM', 'fullgrad': 'FullGrad', 'refinecam': 'RefineCAM'}
TORCHCAM = {'cam': 'CAM', 'gradcam': 'GradCAM', 'gradcam++': 'GradCAMpp', 'xgradcam': 'XGradCAM',
            'layercam': 'LayerCAM', 'scorecam': 'ScoreCAM', 'sscam': 'SSCAM', 'iscam': 'ISCAM',
            'smoothgradcam++': 'SmoothGradCAMpp'}

def setting(method:str, smoke:bool)->dict:
    "Model, batch and layer of a method's row: resnet34 at 224 px for one pass; resnet18 at 64 px for re-runs"
    if method.endswith('@resnet50'):  # resnet50's third stage: 1024 channels, 14×14 maps
        return dict(arch='resnet50', bs=1, size=224, layer='0.6', batch_size=64, once=True)
    if '@bs' in method: return dict(arch='resnet18', bs=2, size=64, layer='0.6', batch_size=int(method.split('@bs')[1]))
    if method in PERTURB: return dict(arch='resnet18', bs=2, size=64, layer='0.6')  # 256 channels, 4×4 maps
    if method in VIT_ROWS or method in LEAN:
        return dict(arch='vit_s', bs=2 if smoke else 4, size=32 if smoke else 224,
                    layer='encoder.layers.encoder_layer_11.ln_1')
    return dict(arch='resnet18', bs=2, size=64, layer='0') if smoke else dict(arch='resnet34', bs=8, size=224, layer='0')

def model_and_batch(arch, bs, size, device, layer=None):
    set_seed(SEED)
    if arch == 'vit_s':  # torchvision's class (torchcam's LeGrad takes only it), ViT-S/16's sizes, random weights
        from torchvision.models import VisionTransformer
        model = VisionTransformer(size, 16, num_layers=12, num_heads=6, hidden_dim=384, mlp_dim=1536, num_classes=2)
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # (torchvision's is zero, and so every gradient)
        return model.eval().to(device), torch.randn(bs, 3, size, size, device=device)
    body, nf = {'resnet34': (resnet34, 512), 'resnet18': (resnet18, 512), 'resnet50': (resnet50, 2048)}[arch]
    head = dict(custom_head=torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                                torch.nn.Linear(nf, 2)))  # a head plain CAM applies to
    model = create_vision_model(body, 2, pretrained=False, **head)
    return model.eval().to(device), torch.randn(bs, 3, size, size, device=device)

def method_fn(lib, method, model, layer, batch_size=64):
    "`x, t -> maps` for `method` in library `lib`, set up as a user would (outside the timing)"
    mod = model.get_submodule(layer)
    if method in LEAN: return lean_fn(method.split('@')[0], model)
    if '@' in method and method != 'gradcam@vit': method = method.split('@')[0]  # (a scaling row: the same method)
    name = method
    if method in ATTENTION_METHODS: return attention_fn(lib, method, model)
    if method == 'gradcam@vit':
        if lib == 'fastcam': return lambda x, t: cam_maps(model, x, layer, t, 'gradcam')
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        side = lambda o: int((o.shape[1] - 1) ** .5)  # the square grid after the class token
        fold = lambda o: o[:, 1:].unflatten(1, (side(o), -1)).permute(0, 3, 1, 2)  # its reshape_transform
        cam = pgc.GradCAM(model, [mod], reshape_transform=fold)
        return lambda x, t: cam(x, [ClassifierOutputTarget(int(c)) for c in t])
    if lib == 'fastcam':
        if method in ('sscam', 'iscam'):  # the same number of samples as torchcam's below
            name = f'{method}_bench'
            if name not in CAM_METHODS:
                rerun = (sscam_weights if method == 'sscam' else iscam_weights)(SAMPLES)
                register_method(CAMMethod(name, _cam, grads=False, rerun=rerun))
        return lambda x, t: cam_maps(model, x, layer, t, name, batch_size=batch_size)
    if lib == 'pytorch-grad-cam':
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        cam = getattr(pgc, PGC[method])(model, [mod], **(dict(batch_size=batch_size) if method == 'ablationcam' else {}))
        if method == 'scorecam': cam.batch_size = batch_size  # how pytorch-grad-cam's ScoreCAM takes it
        if method == 'finercam': return lambda x, t: cam(x, targets=None, target_idx=int(t[0]))  # one class for all
        return lambda x, t: cam(x, [ClassifierOutputTarget(int(c)) for c in t])
    if lib == 'torchcam':
        import torchcam.methods as tc
        kw = dict(batch_size=batch_size) if method in PERTURB else {}
        if method in ('sscam', 'iscam'): kw['num_samples'] = SAMPLES
        if method == 'cam': kw['fc_layer'] = '1.2'
        def run(x, t):
            with getattr(tc, TORCHCAM[method])(model, layer, input_shape=tuple(x.shape[1:]), **kw) as cam:
                with torch.set_grad_enabled(get_method(method).grads): out = model(x)
                return cam(t.tolist(), out)
        return run
    raise ValueError(lib)

def lean_fn(method, model):
    "fastcam's attention method with the lean replay (`AttentionHook(memory='lean')`), as `cam_maps` runs it"
    from fastcam.vit import AttentionHook
    from fastcam.core import inference_state
    def run(x, t):
        with inference_state(model), AttentionHook(model, None, method, memory='lean') as hook:
            with torch.no_grad(): out = model(x)
            return hook.compute(out, t)[0]
    return run

def side_by_side(fns:dict, base, repeats:int, warm:bool=True)->dict:
    """Each of `fns`' time ÷ `base`'s, every library measured side by side: each warmed up (unless not `warm`: rows
    whose one call takes minutes), then in each of `repeats` rounds `base` and one library in turn, each library once,
    so that the machine's drift hits them alike. `{library: (min, median, max)}` of its times over the median of all
    of `base`'s"""
    if warm:
        for f in (*fns.values(), base): f()
    times, tb = {k: [] for k in fns}, []
    for _ in range(repeats):
        for k, f in fns.items():
            for g, ts in ((base, tb), (f, times[k])): t = time.perf_counter(); g(); ts.append(time.perf_counter() - t)
    mb = statistics.median(tb)
    return {k: (min(ts) / mb, statistics.median(ts) / mb, max(ts) / mb) for k, ts in times.items()}

def attention_fn(lib, method, model):
    "An attention method over every block: fastcam's, or torchcam's LeGrad given the same blocks"
    if lib == 'fastcam': return lambda x, t: cam_maps(model, x, None, t, method)
    import torchcam.methods as tc
    def run(x, t):
        with tc.LeGrad(model, list(model.encoder.layers)) as cam:
            with torch.enable_grad(): return cam(t.tolist(), model(x))
    return run

def libs_of(method):
    if method in LEAN: return ['fastcam']
    base = method if method == 'gradcam@vit' else method.split('@')[0]
    return ['fastcam'] + (['pytorch-grad-cam'] if base in PGC or base == 'gradcam@vit' else []) + (
        ['torchcam'] if base in TORCHCAM or base == 'legrad' else [])

def sync(device):
    if device == 'cuda': torch.cuda.synchronize()

def mem_child(lib, method, smoke, device):
    "Peak memory of one pass (`lib='plain'`: a plain no_grad forward) in a process of its own"
    torch.set_num_threads(THREADS)
    s = setting(method, smoke)
    model, x = model_and_batch(s['arch'], s['bs'], s['size'], device)
    if lib != 'plain':
        model = copy.deepcopy(model)
        f = method_fn(lib, method, model, s['layer'], s.get('batch_size', 64))
    t = torch.zeros(len(x), dtype=torch.long, device=device)
    if device == 'cuda': torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated() / 2**20
    else:
        with open('/proc/self/clear_refs', 'w') as fh: fh.write('5')  # reset the peak (VmHWM) to the current RSS
        before = _status('VmRSS')
    if lib == 'plain':
        with torch.no_grad(): model(x)
    else: f(x, t)
    sync(device)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else _status('VmHWM')
    print(json.dumps(dict(before=before, peak=peak)))

def measure_mem(lib, method, smoke, device):
    out = subprocess.run([sys.executable, __file__, '--mem-child', lib, method, str(int(smoke)), device], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])

def main(smoke=False, device='cpu', repeats=3, out='benchmarks/METHODS.md', only:list|None=None):
    global SAMPLES
    torch.set_num_threads(THREADS)
    if smoke: repeats, SAMPLES = 1, 1
    t0, res = time.time(), {}
    log = lambda *a: print(*a, flush=True)
    methods = SMOKE if smoke else only or [m for m in CAM_METHODS if not m.endswith('_bench')] + [*VIT_ROWS, *LEAN,
                                                                                                   *SCALE]
    for method in methods:
        s = setting(method, smoke)
        model, x = model_and_batch(s['arch'], s['bs'], s['size'], device)
        t = torch.zeros(len(x), dtype=torch.long, device=device)
        def plain():
            with torch.no_grad(): model(x)
            sync(device)
        row = dict(setting=s, family=get_method(method.split('@')[0]).family, time={}, mem={})
        mem = method == SMOKE[0] if smoke else not s.get('once')  # a process per library (a smoke run: fastcam's once)
        plain_mem = measure_mem('plain', method, smoke, device)['peak'] if mem else None
        calls = {}
        for lib in libs_of(method):
            f = method_fn(lib, method, copy.deepcopy(model), s['layer'], s.get('batch_size', 64))  # (a peer may write
            calls[lib] = lambda f=f: (f(x, t), sync(device))                                    # .grad, swap modules)
        row['time'] = side_by_side(calls, plain, 1 if s.get('once') else repeats, warm=not s.get('once'))
        for lib in calls:
            if mem and (lib == 'fastcam' or not smoke):
                row['mem'][lib] = measure_mem(lib, method, smoke, device)['peak'] / plain_mem
        if only: row['again'] = provenance(THREADS, device)
        res[method] = row
        log(f"{method:20s}", {lib: f"{fmt(row['time'][lib])}, mem {row['mem'].get(lib, float('nan')):.2f}×"
                              for lib in row['time']})
    text = {} if only or smoke else text_costs(repeats)  # (a smoke run: the image rows only)
    log('text', {m: fmt(r) for m, r in text.items()})
    if smoke: out = Path(tempfile.mkdtemp())/Path(out).name  # a smoke run renders too, never over the real files
    js = Path(out).with_name('methods.json')
    v = dict(meta=provenance(THREADS, device), repeats=repeats, samples=SAMPLES, batch_size=64, methods=res, text=text,
             seconds=time.time() - t0)
    if only:  # re-measured rows replace theirs in the last full run's file; the others stay as they were measured
        old = json.loads(js.read_text())
        v = {**old, 'methods': {**old['methods'], **res}}
    js.write_text(json.dumps(v, indent=1) + '\n')
    Path(out).write_text(render_methods(json.loads(js.read_text())))
    log(f"wrote {js} and {out} in {time.time() - t0:.0f} s")

def text_costs(repeats):
    "Each token method inside `get_preds` ÷ a plain `get_preds`: AWD-LSTM on the synthetic reviews' validation set"
    from fastai.text.all import text_classifier_learner, AWD_LSTM
    from fastai.callback.progress import ProgressCallback
    from fastcam.all import CAMCallback, synth_reviews, review_dls, TOKEN_METHODS
    set_seed(SEED)
    tlearn = text_classifier_learner(review_dls(synth_reviews(700, SEED)), AWD_LSTM, pretrained=False)
    tlearn.remove_cb(ProgressCallback)
    return {m: paired(lambda: tlearn.get_preds(cbs=CAMCallback(method=m)), tlearn.get_preds, repeats)
            for m in TOKEN_METHODS}

if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--mem-child':
        mem_child(sys.argv[2], sys.argv[3], bool(int(sys.argv[4])), sys.argv[5]); sys.exit()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--smoke', action='store_true', help='tiny sizes, one repeat: checks the script runs')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--out', default='benchmarks/METHODS.md')
    p.add_argument('--only', help='comma-separated methods to measure again, keeping the other rows')
    a = p.parse_args()
    main(a.smoke, a.device, a.repeats, a.out, a.only.split(',') if a.only else None)

"""fastcam vs pytorch-grad-cam, torchcam and captum: speed and memory as ratios measured side by side in one run.

    python benchmarks/bench_cam.py            # full run, writes benchmarks/RESULTS.md (make bench)
    python benchmarks/bench_cam.py --smoke    # bs 2, one repeat, seconds: keeps the script working (CI)
"""
from __future__ import annotations
import argparse, json, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import torch
from fastai.vision.all import (create_vision_model, resnet34, vision_learner, ImageDataLoaders, get_image_files,
                               ClassificationInterpretation, ProgressCallback, set_seed)
from fastcam.all import cam_maps, find_layer, body_layer, CAMInterpretation, synth_pets, is_cat, MODEL_KINDS
sys.path.insert(0, str(Path(__file__).parent))
from render import fmt, provenance, render_results

SEED, THREADS = 42, 2
PEERS = ('fastcam', 'pytorch-grad-cam', 'torchcam', 'captum')
LAYERS = ('0', '0.6')
TEXT_GRADIENT = ('gradcam', 'hirescam', 'layercam', 'gradcam++')  # the text methods with a cost target
VIT, VIT_LAYER, VIT_PEERS = 'vit_tiny_patch16_224', 'blocks.11.norm1', ('fastcam', 'pytorch-grad-cam', 'captum')

def vit_reshape(t):
    "pytorch-grad-cam's documented ViT `reshape_transform`: drop the class token, fold 14×14 patches, channels first"
    return t[:, 1:].reshape(t.shape[0], 14, 14, t.shape[2]).permute(0, 3, 1, 2)

def gradcam_fn(lib:str, model, layer:str):
    "A function `x, targets -> maps` computing Grad-CAM with library `lib` (set-up cost outside, as a user would)"
    mod = find_layer(model, layer)[1]
    if lib == 'fastcam': return lambda x, t: cam_maps(model, x, layer, t, 'gradcam')
    if lib == 'pytorch-grad-cam':
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        cam = GradCAM(model, [mod], reshape_transform=vit_reshape if layer == VIT_LAYER else None)
        return lambda x, t: cam(x, [ClassifierOutputTarget(int(c)) for c in t])
    if lib == 'torchcam':
        from torchcam.methods import GradCAM
        def run(x, t):
            with GradCAM(model, layer, input_shape=tuple(x.shape[1:])) as cam:
                with torch.enable_grad(): out = model(x)
                return cam(t.tolist(), out)
        return run
    if lib == 'captum':
        from captum.attr import LayerGradCam
        cam = LayerGradCam(model, mod)
        return lambda x, t: cam.attribute(x, target=t, relu_attributions=True).detach()
    raise ValueError(lib)

def paired(f, base, repeats):
    """`f`'s time ÷ `base`'s: both warmed up, then called alternately `repeats` times so that drift in the machine's
    speed hits both alike. Returns (min, median, max) of `f`'s times over the median of `base`'s."""
    f(); base(); tf, tb = [], []
    for _ in range(repeats):
        for fn, ts in ((f, tf), (base, tb)):
            t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    mb = statistics.median(tb)
    return min(tf) / mb, statistics.median(tf) / mb, max(tf) / mb

def model_and_batch(bs, size, n_out=2, arch='resnet34'):
    "fastai's resnet34 model, or timm's ViT (as `arch`), random weights, eval mode; and a random batch"
    set_seed(SEED)
    if arch == VIT:
        import timm
        return timm.create_model(VIT, pretrained=False, num_classes=n_out).eval(), torch.randn(bs, 3, 224, 224)
    return create_vision_model(resnet34, n_out, pretrained=False).eval(), torch.randn(bs, 3, size, size)

def _status(key):
    "A field of /proc/self/status, in MB"
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key + ':')) / 1024

def mem_child(lib, layer, bs, size, arch):
    "Peak RSS of one pass (plain forward if `lib='plain'`, else one library's Grad-CAM) in a process of its own"
    torch.set_num_threads(THREADS)
    model, x = model_and_batch(bs, size, arch=arch)
    t = torch.zeros(bs, dtype=torch.long)
    f = (lambda: model(x)) if lib == 'plain' else gradcam_fn(lib, model, layer)
    with open('/proc/self/clear_refs', 'w') as fh: fh.write('5')  # reset the peak (VmHWM) to the current RSS
    before = _status('VmRSS')
    if lib == 'plain':
        with torch.no_grad(): f()
    else: f(x, t)
    print(json.dumps(dict(before=before, peak=_status('VmHWM'))))

def measure_mem(lib, layer, bs, size, arch='resnet34'):
    out = subprocess.run([sys.executable, __file__, '--mem-child', lib, layer, str(bs), str(size), arch], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])

def fastai_learner(n, size, bs):
    path = synth_pets(tempfile.mkdtemp(), n=n, size=size, seed=SEED)
    dls = ImageDataLoaders.from_name_func(path, get_image_files(path), valid_pct=0.5, seed=21, label_func=is_cat,
                                          bs=bs, num_workers=0)
    set_seed(SEED)
    return vision_learner(dls, resnet34, pretrained=False)

def measure_strategies(learn, dl, smoke:bool):
    """strategies(): SpRAy per class over the items' maps, each cluster tested by its two counterfactuals ÷
    CAMInterpretation.from_learner on the same items (the pass that made the maps it clusters)"""
    interp = CAMInterpretation.from_learner(learn, dl=dl)
    return paired(lambda: interp.strategies(n_neighbours=1 if smoke else 10),
                  lambda: CAMInterpretation.from_learner(learn, dl=dl), 1 if smoke else 3)

def only_strategies(smoke=False, out='benchmarks/RESULTS.md'):
    "Measure the strategies() row again on its own, on section 3's learner, keeping the full run's other rows"
    torch.set_num_threads(THREADS)
    learn = fastai_learner(*((8, 64, 2) if smoke else (512, 128, 32)))
    learn.remove_cb(ProgressCallback)
    dl = learn.dls.valid.new(shuffle=False, drop_last=False)
    strat = measure_strategies(learn, dl, smoke)
    print(f"strategies ({len(dl.dataset)} items): {fmt(strat)}", flush=True)
    js = Path(out).with_name('results.json')
    v = json.loads(js.read_text())
    v['strategies'], v.setdefault('again', {})['`interp.strategies()`'] = strat, provenance(THREADS)
    if smoke: out = Path(tempfile.mkdtemp())/Path(out).name
    Path(out).with_name('results.json').write_text(json.dumps(v, indent=1) + '\n')
    Path(out).write_text(render_results(v))

def counted(f, net):
    """Run `f` once, counting the model's passes: each forward of `net` (or of a copy, which inherits the hooks) with
    its input, and the backwards (`torch.autograd.grad` calls) taken on its graph, each named by where it starts: the
    module that took the differentiated tensor as its input (`None`: no module did)"""
    calls, real = [], torch.autograd.grad
    first = lambda o: o[0] if isinstance(o, (tuple, list)) else o
    names, fed = {}, {}  # this forward's modules -> names, and each module input's id -> (the tensor, its module)
    def start(m, i):
        names.clear(); names.update({id(mod): n for n, mod in m.named_modules()}); fed.clear()
    def feed(m, i):
        for a in i:
            if isinstance(a, torch.Tensor) and id(a) not in fed and id(m) in names: fed[id(a)] = a, names[id(m)]
    h = [net.register_forward_pre_hook(start),
         net.register_forward_hook(lambda m, i, o: calls.append((i[0], first(o).requires_grad, []))),
         torch.nn.modules.module.register_module_forward_pre_hook(feed)]
    def counting(outputs, inputs, *a, **k):
        t = first(inputs) if isinstance(inputs, (tuple, list)) else inputs
        got = fed.get(id(t))
        calls[-1][2].append(got[1] if got is not None and got[0] is t else None)
        return real(outputs, inputs, *a, **k)
    torch.autograd.grad = counting
    try: f()
    finally:
        for x in h: x.remove()
        torch.autograd.grad = real
    return calls

def bare(net, layer, calls):
    """The counted passes run bare: each forward on its own input, with a graph where one was recorded, from the module
    its first backward starts at on (from `layer`'s output, the model kind's default, if no module took the tensor;
    from the nearest module holding it that a plain forward runs, where it does not: a timm ViT's attention dropout,
    which the probabilities go through only in its unfused attention), and its backwards, each of one output's sum"""
    first = lambda o: o[0] if isinstance(o, (tuple, list)) else o
    mods, ran = dict(net.named_modules()), set()
    hs = [m.register_forward_pre_hook(lambda m, i, n=n: ran.add(n)) for n, m in mods.items()]
    try:
        with torch.no_grad():
            for x, graph, _ in calls[:1]: net(x)
    finally:
        for h in hs: h.remove()
    def running(name):
        while name not in ran: name = name.rpartition('.')[0]
        return name
    def leaf(a):
        a = a.detach().requires_grad_(); torch.set_grad_enabled(True); got.append(a)
        return a
    from_input = lambda m, i: (leaf(i[0]), *i[1:])
    def from_output(m, i, o): return (leaf(o[0]), *o[1:]) if isinstance(o, tuple) else leaf(o)
    def run():
        with torch.no_grad():
            for x, graph, starts in calls:
                if not graph: net(x); continue
                got.clear()
                h = (layer.register_forward_hook(from_output) if not starts or starts[0] is None
                     else mods[running(starts[0])].register_forward_pre_hook(from_input))
                try: out = first(net(x))
                finally: h.remove()
                for k in range(len(starts)):
                    torch.autograd.grad(out.flatten(1)[:, 0].sum(), got[0], retain_graph=k < len(starts) - 1)
                torch.set_grad_enabled(False)
    got = []
    return run

def verdict_row(f, learn, items, repeats):
    """`f`'s time ÷ a plain `get_preds` of `items`, and ÷ its counted passes run bare (all three warmed up, then called in
    turn `repeats` times: (min, median, max) of `f` over the others' medians); and those passes"""
    net = learn.model.eval()
    dl = learn.dls.test_dl(items)
    calls = counted(f, net)
    layer = find_layer(net, body_layer(net, dl.one_batch()[0]))[1]
    fns = dict(f=f, preds=lambda: learn.get_preds(dl=dl), floor=bare(net, layer, calls))
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter(); fn(); ts[k].append(time.perf_counter() - t)
    ratio = lambda k: (min(ts['f']) / statistics.median(ts[k]), statistics.median(ts['f']) / statistics.median(ts[k]),
                       max(ts['f']) / statistics.median(ts[k]))
    return dict(preds=ratio('preds'), floor=ratio('floor'), forwards=len(calls), backwards=sum(len(c[2]) for c in calls))

def verdict_learners(smoke:bool)->dict:
    "A learner of each kind `choose_cam` is measured on (random weights: the passes, not the choice, are timed)"
    from fastai.vision.all import unet_learner
    from fastai.text.all import text_classifier_learner, AWD_LSTM
    from fastcam.all import synth_shapes, shapes_dls, synth_reviews, review_dls
    n, size = (16, 64) if smoke else (64, 128)
    res = dict(pets=fastai_learner(n, size, 16))
    if not smoke:  # (a smoke run checks the two paths, images and texts, not every kind)
        shapes = Path(tempfile.mkdtemp()); synth_shapes(shapes, n=n * 5 // 4, size=64, seed=SEED)  # (n/4 valid)
        set_seed(SEED); res['U-Net'] = unet_learner(shapes_dls(shapes, 'segmentation', bs=8), resnet34, pretrained=False)
        pets = synth_pets(tempfile.mkdtemp(), n=n, size=64, seed=SEED)
        vdls = ImageDataLoaders.from_name_func(pets, get_image_files(pets), valid_pct=0.5, seed=21, label_func=is_cat,
                                               bs=16, num_workers=0)
        set_seed(SEED); res['ViT'] = vision_learner(vdls, VIT, pretrained=False, img_size=64, patch_size=8)
    set_seed(SEED); res['text'] = text_classifier_learner(review_dls(synth_reviews(80 if smoke else 200, SEED)), AWD_LSTM,
                                                          pretrained=False)
    for l in res.values(): l.remove_cb(ProgressCallback)
    return res

def road_row(smoke:bool, repeats:int)->dict:
    """ROAD (combined, nine percentiles each way) of fastcam and of pytorch-grad-cam's `ROADCombined`, same model,
    batch, maps and classes, 224 px: each ÷ a plain forward of the batch"""
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    from fastcam.metrics import road
    n = 2 if smoke else 4
    model, x = model_and_batch(n, 64 if smoke else 224)
    maps = cam_maps(model, x, '0.6')
    with torch.no_grad(): t = model(x).argmax(1)
    cams = torch.nn.functional.interpolate(maps[:, None], x.shape[-2:], mode='bilinear')[:, 0].numpy()
    def plain():
        with torch.no_grad(): model(x)
    ours = lambda: road(model, x, maps, t)
    peer = lambda: ROADCombined()(x, cams, [ClassifierOutputSoftmaxTarget(int(c)) for c in t], model)
    return dict(n=n, size=x.shape[-1], fastcam=paired(ours, plain, repeats), ratio=paired(ours, peer, repeats))

def measure_verdicts(smoke:bool)->dict:
    """The cost of a verdict: `choose_cam` on a learner of each kind and `sanity_checks` on the CNN, each ÷ a plain
    `get_preds` of the same items and ÷ its own counted passes run bare; ROAD beside pytorch-grad-cam's"""
    import fastcam.choose as choose
    learners, rows, n = verdict_learners(smoke), {}, 2 if smoke else choose.AUTO_ITEMS
    log = lambda *a: print(*a, flush=True)
    for kind, learn in learners.items():
        def auto():
            choose._CHOICES.clear()
            choose.choose_cam(learn, n=n, verbose=False)
        rows[f'choose_cam ({kind})'] = verdict_row(auto, learn, learn.dls.valid.items[:n], 1 if smoke else 3)
        log(kind, rows[f'choose_cam ({kind})'])
    learn = learners['pets']
    interp = CAMInterpretation.from_learner(learn, dl=learn.dls.test_dl(learn.dls.valid.items[:n]))
    rows['sanity_checks (pets)'] = verdict_row(
        lambda: interp.sanity_checks(methods=['gradcam', 'hirescam', 'layercam'], n=n), learn, interp.dl.items,
        1 if smoke else 3)
    log('sanity', rows['sanity_checks (pets)'])
    return dict(rows=rows, n=n, road=road_row(smoke, 1 if smoke else 3))

def measure_hf(smoke:bool, repeats:int)->dict:
    """A small HF BERT (`small_hf_classifier`, random weights) in a fastai Learner on the synthetic reviews: each text
    method inside `get_preds` ÷ a plain `get_preds` of the validation reviews"""
    from fastcam.all import CAMCallback, synth_reviews, TOKEN_METHODS
    from fastcam.hf import wordpiece_tokenizer, small_hf_classifier, hf_text_dls, hf_learner
    df = synth_reviews(80 if smoke else 700, SEED)
    tok = wordpiece_tokenizer(df.text)
    learn = hf_learner(hf_text_dls(df.text, df.label, tok, bs=32, seed=SEED), small_hf_classifier('bert', tok, seed=SEED))
    learn.remove_cb(ProgressCallback)
    rows = {m: paired(lambda: learn.get_preds(cbs=CAMCallback(method=m)), learn.get_preds, repeats)
            for m in (*TEXT_GRADIENT, *TOKEN_METHODS)}
    return dict(n=len(learn.dls.valid_ds), rows=rows)

def only_hf(smoke=False, out='benchmarks/RESULTS.md'):
    "Measure the HF text rows again on their own, keeping the full run's other rows"
    torch.set_num_threads(THREADS)
    js = Path(out).with_name('results.json')
    v = json.loads(js.read_text())
    v['hf'] = measure_hf(smoke, 1 if smoke else 5)
    v.setdefault('again', {})['the HF text rows'] = provenance(THREADS)
    print('hf', {m: fmt(r) for m, r in v['hf']['rows'].items()}, flush=True)
    if smoke: out = Path(tempfile.mkdtemp())/Path(out).name
    Path(out).with_name('results.json').write_text(json.dumps(v, indent=1) + '\n')
    Path(out).write_text(render_results(v))

def only_verdicts(smoke=False, out='benchmarks/RESULTS.md'):
    "Measure the verdicts' rows again on their own, keeping the full run's other rows"
    torch.set_num_threads(THREADS)
    js = Path(out).with_name('results.json')
    v = json.loads(js.read_text())
    v['verdicts'], v.setdefault('again', {})['the cost of a verdict'] = measure_verdicts(smoke), provenance(THREADS)
    if smoke: out = Path(tempfile.mkdtemp())/Path(out).name
    Path(out).with_name('results.json').write_text(json.dumps(v, indent=1) + '\n')
    Path(out).write_text(render_results(v))

def main(smoke=False, bs=16, mem_bs=64, size=224, repeats=5, out='benchmarks/RESULTS.md'):
    if smoke: bs, mem_bs, size, repeats = 2, 2, 64, 1
    torch.set_num_threads(THREADS)
    rows, t0 = [], time.time()
    log = lambda *a: print(*a, flush=True)
    model, x = model_and_batch(bs, size)
    t = torch.zeros(bs, dtype=torch.long)
    def plain():
        with torch.no_grad(): model(x)
    plain(); start = time.perf_counter(); plain(); base_ms = (time.perf_counter() - start) * 1000
    log(f"plain forward bs {bs}: {base_ms:.0f} ms")

    # 1. Grad-CAM per library: time and peak memory, each ÷ plain inference
    speed = {}
    for layer in LAYERS:
        for lib in PEERS:
            f = gradcam_fn(lib, model, layer)
            speed[lib, layer] = paired(lambda: f(x, t), plain, repeats)
            log(f"{lib:17s} @ {layer}: {fmt(speed[lib, layer])}")
    mem = {}
    for layer in LAYERS:  # a process each (a smoke run too: it renders every table)
        plain_mem = measure_mem('plain', layer, mem_bs, size)
        for lib in PEERS:
            m = measure_mem(lib, layer, mem_bs, size)
            growth = lambda r: max(r['peak'] - r['before'], 1.0)  # MB; at least 1 so that a smoke run cannot divide by zero
            mem[lib, layer] = (m['peak'] / plain_mem['peak'], growth(m) / growth(plain_mem))
            log(f"memory {lib:17s} @ {layer}: {mem[lib, layer][0]:.2f}× total, {mem[lib, layer][1]:.2f}× of the pass")

    # 1b. The same for a vision transformer (timm ViT-tiny, 224 px), at its last block's first norm
    vit, xv = model_and_batch(bs, size, arch=VIT)
    def vplain():
        with torch.no_grad(): vit(xv)
    vfns = {lib: gradcam_fn(lib, vit, VIT_LAYER) for lib in VIT_PEERS}
    vspeed = {lib: paired(lambda: f(xv, t), vplain, repeats) for lib, f in vfns.items()}
    vplain_mem = measure_mem('plain', VIT_LAYER, mem_bs, size, VIT)
    vmem = {lib: measure_mem(lib, VIT_LAYER, mem_bs, size, VIT)['peak'] / vplain_mem['peak']
            for lib in VIT_PEERS}
    log('ViT', {lib: f"time {fmt(vspeed[lib])}, memory {vmem.get(lib, float('nan')):.2f}×" for lib in VIT_PEERS})

    # 2. Other fastcam methods ÷ plain forward; 'all' (37 classes) ÷ one class
    others = {m: paired(lambda: cam_maps(model, x, '0', t, m), plain, repeats)
              for m in ('gradcam', 'gradcam++', 'hirescam', 'xgradcam', 'layercam', 'eigencam')}
    m37, x37 = model_and_batch(bs, size, 37)
    allr = {l: paired(lambda: cam_maps(m37, x37, l, 'all'), lambda: cam_maps(m37, x37, l, 'pred'), repeats)
            for l in LAYERS}
    log('methods', {k: fmt(v) for k, v in others.items()}, "'all'", {k: fmt(v) for k, v in allr.items()})
    # multi-label: the labels a 17-label model predicts (sigmoid > 0.5, as fastai decodes), one batched backward
    m17, x17 = model_and_batch(bs, size, 17)
    with torch.no_grad(): labels17 = m17(x17).sigmoid() > 0.5
    multi = paired(lambda: cam_maps(m17, x17, '0', labels17), lambda: cam_maps(m17, x17, '0', 'pred'), repeats)
    log(f"multi-label 'pred' ({labels17.sum(1).float().mean():.1f} of 17 labels per item): {fmt(multi)}")

    # 3. Inside fastai: whole-DataLoader interpretation and single-item predict
    n_items, fsize = (8, 64) if smoke else (512, 128)
    learn = fastai_learner(n_items, fsize, bs if smoke else 32)
    dl = learn.dls.valid.new(shuffle=False, drop_last=False)
    learn.remove_cb(ProgressCallback)
    ci = lambda: ClassificationInterpretation.from_learner(learn, dl=dl)
    cami = paired(lambda: CAMInterpretation.from_learner(learn, dl=dl), ci, repeats)
    peer_cam = gradcam_fn('pytorch-grad-cam', learn.model, '0')
    def peer_flow():  # the same result the peer way: one get_preds (preds, losses), then pytorch-grad-cam per batch
        preds, _, losses = learn.get_preds(dl=dl, with_loss=True)
        for i, (xb, _) in enumerate(dl): peer_cam(xb.as_subclass(torch.Tensor), preds[i * dl.bs:(i + 1) * dl.bs].argmax(1))
    peer = paired(peer_flow, ci, repeats)
    item = learn.dls.valid_ds.items[0]
    # one item takes tens of milliseconds, so noise is large: four times the repeats, still only seconds
    pred = paired(lambda: learn.cam_predict(item), lambda: learn.predict(item), 4 * repeats)
    log(f"CAMInterpretation {fmt(cami)}, peer flow {fmt(peer)}, cam_predict {fmt(pred)}")

    # 3a. Sanity checks of Grad-CAM on 16 items (cascading randomisation of every block, random logit) ÷ a plain
    # get_preds of the same items
    interp16, n16 = CAMInterpretation.from_learner(learn, dl=dl), min(16, len(dl.dataset))  # a smoke run has fewer
    items16 = learn.dls.test_dl(interp16.items_at(slice(0, n16)))
    sanity = paired(lambda: interp16.sanity_checks(methods=['gradcam'], n=n16), lambda: learn.get_preds(dl=items16),
                    1 if smoke else 3)
    log(f"sanity checks (gradcam, {n16} items): {fmt(sanity)}")
    # 3a''. cam_report of Grad-CAM at the interpretation's layer on the same items: every measure, both sanity checks
    report = paired(lambda: interp16.cam_report(methods=['gradcam'], max_items=n16),
                    lambda: learn.get_preds(dl=items16), 1 if smoke else 3)
    log(f"cam_report (gradcam, {n16} items): {fmt(report)}")

    # 3a'. method='auto', layer='auto': choose_cam on 16 validation items (5 methods x 2 layers, measured afresh each
    # time) ÷ a plain get_preds of the same items
    import fastcam.choose as choose
    def auto():
        choose._CHOICES.clear()
        choose.choose_cam(learn, n=n16, verbose=False)
    n_auto = len(choose.AUTO_METHODS) * len(MODEL_KINDS.body_head.candidates(learn.model, items16.one_batch()[0]))
    auto_r = paired(auto, lambda: learn.get_preds(dl=items16), 1 if smoke else 3)
    log(f"auto ({n_auto} candidates, 16 items): {fmt(auto_r)}")

    strat = measure_strategies(learn, dl, smoke)
    log(f"strategies ({len(dl.dataset)} items): {fmt(strat)}")
    verdicts = measure_verdicts(smoke)

    # 3b. CAMMonitor: a fit with 8 items watched every epoch (epoch 0 included) ÷ the same fit without it
    from fastcam.all import CAMMonitor
    mon_n, mon_epochs = (16, 1) if smoke else (256, 2)
    def mon_fit(watch):
        mlearn = fastai_learner(mon_n, fsize, bs if smoke else 32)
        mlearn.remove_cb(ProgressCallback)
        mlearn.fit(mon_epochs, 1e-3, cbs=CAMMonitor(mlearn.dls.valid_ds.items[:8], layer='0.6') if watch else None)
    mon = paired(lambda: mon_fit(True), lambda: mon_fit(False), 1 if smoke else 3)
    log(f"CAMMonitor (8 items, every epoch, {mon_epochs} epochs): {fmt(mon)}")

    # 4. Text: each method inside get_preds ÷ a plain get_preds, AWD-LSTM on the synthetic reviews' validation set
    from fastai.text.all import text_classifier_learner, AWD_LSTM
    from fastcam.all import CAMCallback, synth_reviews, review_dls
    set_seed(SEED)
    tlearn = text_classifier_learner(review_dls(synth_reviews(80 if smoke else 700, SEED)), AWD_LSTM, pretrained=False)
    tlearn.remove_cb(ProgressCallback)
    # (the token methods, which re-run the model: in bench_methods.py, with every other method)
    text = {m: paired(lambda: tlearn.get_preds(cbs=CAMCallback(method=m)), tlearn.get_preds, repeats) for m in TEXT_GRADIENT}
    log('text', {m: fmt(r) for m, r in text.items()})
    hf = measure_hf(smoke, repeats)
    log('hf', {m: fmt(r) for m, r in hf['rows'].items()})
    if smoke: out = Path(tempfile.mkdtemp())/Path(out).name  # a smoke run renders too, never over the real files
    per = lambda d, libs: {lib: {layer: d[lib, layer] for layer in LAYERS} for lib in libs}
    v = dict(meta=provenance(THREADS), seed=SEED, repeats=repeats, bs=bs, mem_bs=mem_bs, size=size, base_ms=base_ms,
             speed=per(speed, PEERS), mem=per(mem, PEERS), vit=VIT, vit_layer=VIT_LAYER, vspeed=vspeed, vmem=vmem,
             others=others, allr=allr, multi=multi, labels17=labels17.sum(1).float().mean().item(), n_items=n_items,
             fsize=fsize, n_valid=len(dl.dataset), dl_bs=dl.bs, cami=cami, peer=peer, pred=pred, n16=n16,
             sanity=sanity, report=report, n_auto=n_auto, auto=auto_r, strategies=strat, verdicts=verdicts, mon=mon, mon_n=mon_n, mon_epochs=mon_epochs,
             n_text=len(tlearn.dls.valid_ds), text=text, hf=hf, seconds=time.time() - t0)
    js = Path(out).with_name('results.json')
    js.write_text(json.dumps(v, indent=1) + '\n')
    Path(out).write_text(render_results(json.loads(js.read_text())))
    log(f"wrote {js} and {out} in {time.time() - t0:.0f} s")


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--mem-child':
        mem_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]); sys.exit()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--smoke', action='store_true', help='bs 2, one repeat, tiny images: checks the script runs')
    p.add_argument('--bs', type=int, default=16); p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--out', default='benchmarks/RESULTS.md')
    p.add_argument('--only', choices=['strategies', 'verdicts', 'hf'], help='measure these rows again, keeping the others')
    a = p.parse_args()
    if a.only: dict(strategies=only_strategies, verdicts=only_verdicts, hf=only_hf)[a.only](a.smoke, a.out)
    else: main(a.smoke, bs=a.bs, repeats=a.repeats, out=a.out)

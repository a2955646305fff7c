"""The benchmarks' Markdown, rendered from the measurements the benchmark scripts store: no number is typed.

    python benchmarks/render.py            # rewrite RESULTS.md, METHODS.md and VIT.md from their .json
    python benchmarks/render.py --check    # fail, one line per file, where a .md differs from its rendering

Each script of `make bench` measures, writes its `.json` (with the commit it measured, the machine and the date) and
calls the function here that renders its `.md`; `make test` runs `--check`, so that a figure edited by hand in a
`.md`, or a measurement changed without rendering, fails."""
from __future__ import annotations
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).parent

def provenance(threads:int|None=None, device:str='cpu')->dict:
    "What a run measured and where: the commit (and whether the tree had changes), the machine, the date, versions"
    import importlib.metadata as md
    git = lambda *a: subprocess.run(['git', *a], cwd=HERE, capture_output=True, text=True).stdout.strip()
    if device == 'cpu':
        cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')),
                   platform.processor())
        where = f"{cpu}, {os.cpu_count()} cores" + (f", `torch.set_num_threads({threads})`" if threads else '')
    else:
        import torch
        where = torch.cuda.get_device_name()
    vers = {p: md.version(p) for p in ('torch', 'fastai', 'grad-cam', 'torchcam', 'captum', 'timm')}
    return dict(commit=git('rev-parse', '--short=10', 'HEAD'), dirty=bool(git('status', '--porcelain', '--', 'fastcam',
                'benchmarks/*.py')), machine=where, device=device, date=time.strftime('%Y-%m-%d'),
                python=platform.python_version(), versions=vers)

def header(title:str, meta:dict)->list[str]:
    "The title, and the run's provenance on the line below it"
    v = meta['versions']
    return [f"# {title}", "",
            f"Measured by `make bench` at commit `{meta['commit']}`" + (" (with uncommitted changes)" if meta['dirty']
            else "") + f" on {meta['date']}: {meta['device']}, {meta['machine']}. Python {meta['python']}, "
            + ', '.join(f"{k} {x}" for k, x in v.items()) + ".", ""]

def fmt(r)->str:
    "A ratio: a median alone, or `[min, median, max]` with its spread"
    return f"{r:.2f}×" if isinstance(r, (int, float)) else f"{r[1]:.2f}× ({r[0]:.2f}–{r[2]:.2f})"

def mark(ok:bool)->str: return '✅' if ok else '❌'

PEERS, VIT_PEERS, LAYERS = ('fastcam', 'pytorch-grad-cam', 'torchcam', 'captum'), ('fastcam', 'pytorch-grad-cam',
                                                                                   'captum'), ('0', '0.6')
LAYER_NAMES = {'0': 'model[0]', '0.6': 'model[0][-2]'}

def median(r)->float: return r if isinstance(r, (int, float)) else r[1]

def targets(v:dict)->list[tuple]:
    "RESULTS.md's targets: (what, goal or None where only reported, fastcam's ratio as stored, peers' cell)"
    mem, peers = v['mem'], lambda d, libs, f: ', '.join(f"{p} {f(d[p])}" for p in libs)
    return [
        (f"peak RSS of a Grad-CAM pass ÷ plain inference, `model[0]`, bs {v['mem_bs']}", 1.10, mem['fastcam']['0'][0],
         peers({p: mem[p]['0'][0] for p in PEERS[1:]}, PEERS[1:], fmt)),
        ("`CAMInterpretation.from_learner` ÷ `ClassificationInterpretation.from_learner`", 1.10, v['cami'],
         f"get_preds + pytorch-grad-cam {fmt(v['peer'])}"),
        ("`target='all'` (37 classes) ÷ single class, `model[0]`", 1.5, v['allr']['0'], "peers: one pass per class"),
        ("`target='all'` (37 classes) ÷ single class, `model[0][-2]`", None, v['allr']['0.6'], ""),
        (f"`interp.sanity_checks(methods=['gradcam'], n={v['n16']})` (every block randomised in turn, random logit) ÷ "
         f"`get_preds` of the same {v['n16']} items", None, v['sanity'], "peers: no sanity checks"),
        (f"`interp.cam_report(methods=['gradcam'], max_items={v['n16']})` (deletion, insertion, ROAD, sparseness, "
         f"both sanity checks) ÷ `get_preds` of the same {v['n16']} items", None, v['report'], "peers: no report"),
        (f"`method='auto', layer='auto'` (`choose_cam`: {v['n_auto']} candidates measured on {v['n16']} validation "
         f"items, sanity checks included) ÷ `get_preds` of the same {v['n16']} items; once per model", None,
         v['auto'], "peers: no choice"),
        (f"`interp.strategies()` (SpRAy per class, each cluster tested by its two counterfactuals) ÷ "
         f"`CAMInterpretation.from_learner` on the same {v['n_valid']} items", None, v['strategies'],
         "peers: no strategies"),
        ("`learn.cam_predict(item)` ÷ `learn.predict(item)`", 1.2, v['pred'], ""),
        (f"`fit` with `CAMMonitor` (8 items, every epoch and before training; {v['mon_epochs']} epochs on "
         f"{v['mon_n']} synthetic pets) ÷ `fit` without it", 1.05, v['mon'], "peers: no monitor"),
        (f"multi-label `'pred'` (17 labels, {v['labels17']:.1f} predicted per item) ÷ one label, `model[0]`", 1.5,
         v['multi'], "peers: one pass per label"),
        (f"ViT: peak RSS of a Grad-CAM pass ÷ plain inference, bs {v['mem_bs']}", 1.10, v['vmem']['fastcam'],
         peers(v['vmem'], VIT_PEERS[1:], fmt)),
        (f"ViT: Grad-CAM time ÷ plain forward, bs {v['bs']}", 1.2, v['vspeed']['fastcam'],
         peers(v['vspeed'], VIT_PEERS[1:], fmt)),
        *[(f"text `{m}` inside `get_preds` ÷ plain `get_preds`", 1.15, r, "") for m, r in v['text'].items()]]

FLOOR_GOAL, ROAD_GOAL = 1.3, 1.0

def verdicts_section(v:dict)->list[str]:
    "RESULTS.md's section on the cost of a verdict (`bench_cam.measure_verdicts`), where the run measured it"
    if 'verdicts' not in v: return []
    d, r = v['verdicts'], v['verdicts']['road']
    L = ["", "## The cost of a verdict", "",
         f"`choose_cam` (what `'auto'` runs, on {d['n']} validation items) on a learner of each kind, and "
         "`sanity_checks` of three one-pass methods: each ÷ a plain `get_preds` of the same items, and ÷ its own "
         "passes run bare (every forward it made, counted by a hook on the model, on its own input, with a graph where "
         "it had one, from the module its backward starts at, and its backwards), with the passes counted.", "",
         "| what | forwards | backwards | ÷ `get_preds` | ÷ its passes run bare |", "|---|---|---|---|---|"]
    for what, row in d['rows'].items():
        goal = FLOOR_GOAL if what.startswith('choose_cam') else None
        L.append(f"| `{what}` | {row['forwards']} | {row['backwards']} | {fmt(row['preds'])} | {fmt(row['floor'])}"
                 + (f" {mark(median(row['floor']) <= goal)} (≤ {goal:.2f}×)" if goal else '') + " |")
    L += ["", f"ROAD (combined, nine percentiles each way, noisy linear imputation) on {r['n']} items at {r['size']} px, "
          f"resnet34: fastcam {fmt(r['fastcam'])} a plain forward of the batch; fastcam ÷ pytorch-grad-cam's "
          f"`ROADCombined` on the same batch, maps and classes: {fmt(r['ratio'])} "
          f"{mark(median(r['ratio']) <= ROAD_GOAL)} (≤ {ROAD_GOAL:.2f}×)."]
    return L

def render_results(v:dict)->str:
    "benchmarks/RESULTS.md from benchmarks/results.json (bench_cam.py)"
    speed, mem = v['speed'], v['mem']
    rows = targets(v)
    L = header("fastcam benchmarks", v['meta']) + [
         "Reproduce with `make bench` (`python benchmarks/bench_cam.py`). Every figure is a ratio of two timings or "
         "memory peaks taken in the same run. For each timing ratio both sides are warmed up and then called "
         f"alternately {v['repeats']} times, so that the machine's drift hits both alike; the figure is the median of "
         "the numerator over the median of the denominator, with the numerator's min–max in brackets.", "",
         "## Set-up", "",
         f"- Model: fastai `create_vision_model(resnet34, 2, pretrained=False)`, eval mode, CPU, seed {v['seed']}",
         f"- Timing: batch size {v['bs']}, {v['size']} px. Memory: batch size {v['mem_bs']}, {v['size']} px, one "
         "process per library and layer (peak RSS: `VmHWM` after resetting it just before the pass)",
         f"- fastai rows: {v['n_items']} synthetic pets images at {v['fsize']} px, resnet34, the {v['n_valid']}-item "
         f"validation DataLoader, bs {v['dl_bs']}", "",
         "## Where fastcam stands", "",
         f"A Grad-CAM pass costs {mem['fastcam']['0'][0]:.2f}× the peak memory of plain inference at the body "
         f"({mem['fastcam']['0.6'][0]:.2f}× at `model[0][-2]`); the peers need "
         f"{min(mem[p]['0'][0] for p in PEERS[1:]):.2f}–{max(mem[p]['0'][0] for p in PEERS[1:]):.2f}×. In time, "
         f"fastcam's Grad-CAM is {speed['fastcam']['0'][1]:.2f}× a plain forward at the body "
         f"({speed['fastcam']['0.6'][1]:.2f}× at `model[0][-2]`): "
         + ', '.join(f"{p} {speed[p]['0'][1]:.2f}× ({speed[p]['0.6'][1]:.2f}×)" for p in PEERS[1:])
         + ". The min–max in brackets below shows how far one run's noise goes. Inside fastai, maps for a whole "
         f"DataLoader cost {v['cami'][1]:.2f}× the plain interpretation, where the peer flow costs {v['peer'][1]:.2f}×.",
         "", "## Targets", "", "| ratio | target | fastcam | peers, same run |", "|---|---|---|---|"]
    for what, goal, r, peer in rows:
        L.append(f"| {what} | " + (f"≤ {goal:.2f}× | {fmt(r)} {mark(median(r) <= goal)}" if goal else f"reported | {fmt(r)}")
                 + f" | {peer} |")
    miss = [f"- Missed: {what} at {median(r):.2f}× against ≤ {goal:.2f}×." for what, goal, r, _ in rows if goal and median(r) > goal]
    again = v.get('again', {})
    if again: L += ["", "Measured again on its own (`--only`), the other rows coming from the full run: " + '; '.join(
        f"{what} at commit `{a['commit']}` on {a['date']}, {a['machine']}" for what, a in again.items()) + "."]
    L += ([""] + miss if miss else []) + ["", "## Grad-CAM, per library", "",
          f"Time per batch ÷ a plain `no_grad` forward of the same batch (about {v['base_ms']:.0f} ms), and peak RSS ÷ "
          "that of a plain forward in its own process. Memory is shown two ways: the whole process's peak (which "
          "includes the torch libraries that every library pays), and the growth during the pass (peak minus RSS "
          "before the pass), which is what the method itself costs.", "",
          "| library | layer | time ÷ forward | peak RSS ÷ forward | growth ÷ forward's growth |", "|---|---|---|---|---|"]
    L += [f"| {lib} | `{LAYER_NAMES[layer]}` | {fmt(speed[lib][layer])} | {mem[lib][layer][0]:.2f}× | "
          f"{mem[lib][layer][1]:.2f}× |" for layer in LAYERS for lib in PEERS]
    L += verdicts_section(v)
    L += ["", f"## Vision transformer: timm `{v['vit']}`, at `{v['vit_layer']}`", "",
          "Random weights, 224 px, the same batch sizes. The layer outputs a class token and 14×14 patches; fastcam "
          "folds them itself, pytorch-grad-cam is given its documented `reshape_transform`, and captum's "
          "`LayerGradCam` has no token layout (it averages the gradient over the features, so its map is not a patch "
          "map: it is listed for the cost of the same forward and backward).", "",
          "| library | time ÷ forward | peak RSS ÷ forward |", "|---|---|---|"]
    L += [f"| {lib} | {fmt(v['vspeed'][lib])} | {v['vmem'][lib]:.2f}× |" for lib in VIT_PEERS]
    L += ["", "## Text: each gradient method inside `get_preds`", "",
          f"fastai's `text_classifier_learner(dls, AWD_LSTM, pretrained=False)` on the {v['n_text']} validation "
          "reviews of `synth_reviews(700)`; time of `get_preds(cbs=CAMCallback(method=m))` ÷ a plain `get_preds`. The "
          "token methods, which re-run the model on each batch, are in [METHODS.md](METHODS.md).", "",
          "| method | time ÷ get_preds |", "|---|---|"]
    L += [f"| `{m}` | {fmt(r)} |" for m, r in v['text'].items()]
    if 'hf' in v:
        L += ["", "## Hugging Face text: each method inside `get_preds`", "",
              f"A small BERT (`small_hf_classifier('bert', tok)`: two blocks, width 64, random weights) in a fastai "
              f"`Learner` (`hf_learner`) on the {v['hf']['n']} validation reviews of `synth_reviews(700)`, tokenized "
              "by `wordpiece_tokenizer`; time of `get_preds(cbs=CAMCallback(method=m))` ÷ a plain `get_preds`, the "
              "gradient methods at the input embeddings.", "", "| method | time ÷ get_preds |", "|---|---|"]
        L += [f"| `{m}` | {fmt(r)} |" for m, r in v['hf']['rows'].items()]
    L += ["", "## Other fastcam methods, `model[0]`", "", "| method | time ÷ forward |", "|---|---|"]
    L += [f"| `{m}` | {fmt(r)} |" for m, r in v['others'].items()]
    L += ["", f"Run time: {v['seconds']:.0f} s.", ""]
    return '\n'.join(L)

LIBS = ('fastcam', 'pytorch-grad-cam', 'torchcam')

def render_methods(v:dict)->str:
    "benchmarks/METHODS.md from benchmarks/methods.json (bench_methods.py)"
    L = header("Every method, next to the peers", v['meta']) + [
         "Reproduce with `make bench` (`python benchmarks/bench_methods.py`). Each row: time of one batch of maps ÷ a "
         f"plain `no_grad` forward of the same batch (all warmed up; then {v['repeats']} rounds, in each the plain "
         "forward and one library in turn, every library of the row side by side; median over the median of the plain "
         "forwards, min–max in brackets), and the peak memory of the pass ÷ that of a plain forward, each in a process of its "
         "own. The peers are given the same model, layer, batch and class, and the same `batch_size` of masked inputs.",
         "",
         "- One-pass methods: fastai `create_vision_model(resnet34, 2, pretrained=False)` with a pool → linear head, "
         "at `model[0]`. Methods that re-run the model (Score-CAM, SS-CAM, IS-CAM, Ablation-CAM): resnet18 at "
         f"`model[0][-2]`, {v['batch_size']} masked inputs per pass; SS-CAM and IS-CAM with {v['samples']} samples for "
         "both libraries. ViT rows (`gradcam@vit`, the attention methods): torchvision's `VisionTransformer` with "
         "ViT-S/16's sizes, random weights; Grad-CAM at the last block's `ln_1` (pytorch-grad-cam with its "
         "`reshape_transform`), the attention methods over every block (torchcam's LeGrad given the same blocks). "
         "Each row's model, batch size and image size are in its `setting` column. Rows `@lean`: fastcam's attention "
         "methods with the lean replay, one block's graph at a time (`AttentionHook(memory='lean')`), where the plain "
         "rows keep the blocks' graph (`memory='auto'` keeps it where it takes at most a quarter of the free memory). "
         "Rows `@bs16`, `@bs256`: the same Score-CAM with another masked-input `batch_size`; rows `@resnet50`: "
         "resnet50's third stage (1024 channels, 14×14 maps) on one 224 px image, each library timed once (a "
         "thousand forwards a call).", "",
         "| method | setting | fastcam time | pytorch-grad-cam time | torchcam time | fastcam memory | "
         "pytorch-grad-cam memory | torchcam memory |", "|---|---|---|---|---|---|---|---|"]
    for m, r in v['methods'].items():
        s = r['setting']
        cells = [fmt(r['time'][l]) if l in r['time'] else '—' for l in LIBS]
        cells += [f"{r['mem'][l]:.2f}×" if l in r['mem'] else '—' for l in LIBS]
        more = (f", `{s['layer']}`" if s['arch'] == 'resnet50' else '') + (
            f", batch_size {s['batch_size']}" if 'batch_size' in s else '')
        L.append(f"| `{m}` | {s['arch']}, bs {s['bs']}, {s['size']} px{more} | " + ' | '.join(cells) + ' |')
    L += ["", "## Token methods, inside `get_preds`", "",
          "fastai's `text_classifier_learner(dls, AWD_LSTM, pretrained=False)` on the validation reviews of "
          "`synth_reviews(700)`: time of `get_preds(cbs=CAMCallback(method=m))` ÷ a plain `get_preds`, each method "
          "with its defaults.", "", "| method | time ÷ get_preds |", "|---|---|"]
    L += [f"| `{m}` | {fmt(r)} |" for m, r in v['text'].items()]
    again = {m: r['again'] for m, r in v['methods'].items() if 'again' in r}
    if again: L += ["", "Measured again on their own after a change to them (`--only`), the others coming from the full "
                    "run above: " + '; '.join(f"`{m}` at commit `{a['commit']}` on {a['date']}, {a['machine']}"
                                               for m, a in again.items()) + "."]
    L += ["", f"Run time: {v['seconds']:.0f} s.", ""]
    return '\n'.join(L)

def vit_table(v:dict):
    "Mean, min and max of each candidate over the ViTs that learned, most faithful first; and the chosen default"
    import pandas as pd
    df = pd.DataFrame(v['runs'])
    agg = df.groupby(['method', 'layer']).agg(
        faithfulness=('faithfulness', 'mean'), faith_min=('faithfulness', 'min'), faith_max=('faithfulness', 'max'),
        pointing=('pointing_game', 'mean'), point_min=('pointing_game', 'min'), point_max=('pointing_game', 'max'),
        passes=('passes', 'all')).reset_index().sort_values('faithfulness', ascending=False)
    return agg, (agg[agg.passes].iloc[0] if agg.passes.any() else None)

def render_vit(v:dict)->str:
    "benchmarks/VIT.md from benchmarks/VIT.json (bench_vit_defaults.py)"
    agg, best = vit_table(v)
    rng = lambda m, lo, hi: f"{m:.2f} ({lo:.2f}–{hi:.2f})"
    L = header("Which map to trust on a ViT", v['meta']) + [v['doc'], "",
         f"{len(v['learned'])} of {v['seeds']} models learned (accuracy " + ', '.join(f"{a:.2f}" for a in v['accuracies'])
         + f"; a model counts from {v['min_accuracy']:.2f}); {v['n']} images, {v['epochs']} epochs; {v['max_items']} "
         "validation items per model; mean (min–max) over the models that learned. Each method's cost is measured "
         "on a quiet machine in [METHODS.md](METHODS.md).", "",
         "| method | layer | faithfulness | pointing game | passes both sanity checks on every model |",
         "|---|---|---|---|---|"]
    L += [f"| `{r.method}` | `{r.layer}` | {rng(r.faithfulness, r.faith_min, r.faith_max)} | "
          f"{rng(r.pointing, r.point_min, r.point_max)} | {'yes' if r.passes else 'no'} |" for r in agg.itertuples()]
    L += ["", "Chosen: " + ("none passes" if best is None else f"`{best.method}` at `{best.layer}`") + ".", "",
          f"Run time: {v['seconds']:.0f} s.", ""]
    return '\n'.join(L)

RENDERS = {'results.json': ('RESULTS.md', render_results), 'methods.json': ('METHODS.md', render_methods),
           'VIT.json': ('VIT.md', render_vit)}

def render(js:str|Path, folder:Path=HERE)->tuple[Path, str]:
    "The path of the Markdown that `folder/js` renders, and its text"
    md, f = RENDERS[Path(js).name]
    return Path(folder)/md, f(json.loads((Path(folder)/js).read_text()))

def stale(folder:Path=HERE)->list[str]:
    "One line per Markdown file of `folder` that differs from what its measurements render"
    res = []
    for js in RENDERS:
        md, text = render(js, folder)
        if not md.exists() or md.read_text() != text:
            res.append(f"ERROR: {md} differs from what {Path(folder)/js} renders: run 'python benchmarks/render.py' "
                       "(or 'make bench'), never edit it by hand")
    return res

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--check', action='store_true', help='fail where a .md differs from its rendering')
    p.add_argument('--folder', default=str(HERE))
    a = p.parse_args()
    if a.check:
        if lines := stale(Path(a.folder)): sys.exit('\n'.join(lines))
        print(f"render: {', '.join(md for md, _ in RENDERS.values())} are what their measurements render")
    else:
        for js in RENDERS:
            md, text = render(js, Path(a.folder)); md.write_text(text); print(f"wrote {md}")

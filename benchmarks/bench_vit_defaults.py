"""Which map to trust on a ViT: layer and attention methods, measured over several ViTs trained from scratch.

Each seed trains a timm `vit_tiny` (patch 8, 64 px, 8×8 patches) on synthetic pets (`synth_pets`), checks that it
learned (accuracy ≥ 0.9) and measures each candidate with `cam_report` on its validation items (`choose_cam`'s
methods at the ViT kind's candidate layers, and the attention methods over every block): faithfulness
(insertion − deletion AUC, deleted pixels set to zero), the pointing game at the object's box, and the sanity checks.
The mean, min and max over the models that learned go to `benchmarks/VIT.md`; the ViT kind's default is the most
faithful on average among those that pass both sanity checks on every model.

    python benchmarks/bench_vit_defaults.py            # 3 seeds
    python benchmarks/bench_vit_defaults.py --seeds 5
"""
import argparse, json, sys, time, warnings
from pathlib import Path
import pandas as pd, torch
from fastai.vision.all import ImageDataLoaders, get_image_files, Resize, vision_learner, accuracy, set_seed
from fastcam.all import CAMInterpretation, synth_pets, is_cat, item_boxes, ATTENTION_METHODS, AUTO_METHODS, MODEL_KINDS
sys.path.insert(0, str(Path(__file__).parent))
from render import provenance, render_vit, vit_table
warnings.filterwarnings('ignore')

ARCH, SIZE, EPOCHS, N, MAX_ITEMS, MIN_ACCURACY = 'vit_tiny_patch16_224', 64, 12, 400, 40, 0.9
METHODS = list(AUTO_METHODS) + list(ATTENTION_METHODS)

def one_seed(path, seed, log):
    dls = ImageDataLoaders.from_name_func(path, get_image_files(path), valid_pct=0.2, seed=0, label_func=is_cat,
                                          item_tfms=Resize(SIZE), bs=32, num_workers=0)
    set_seed(seed)
    learn = vision_learner(dls, ARCH, pretrained=False, img_size=SIZE, patch_size=8, metrics=accuracy)
    t0 = time.time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(EPOCHS, 1e-3)
    acc = float(learn.validate()[1])
    log(f"seed {seed}: accuracy {acc:.2f} after {EPOCHS} epochs ({time.time() - t0:.0f} s)")
    if acc < MIN_ACCURACY: return acc, None
    interp = CAMInterpretation.from_learner(learn)
    layers = MODEL_KINDS.vit.candidates(learn.model, None)  # the first norm of the last three blocks
    df = interp.cam_report(methods=METHODS, layers=layers, boxes=item_boxes(interp.dl.items), max_items=MAX_ITEMS,
                           road=False, steps=8, baseline='zero')  # (as choose_cam: a blur keeps the colours)
    df['seed'], df['accuracy'] = seed, acc
    df.attrs = {}  # (the targets explained: a tensor, which pandas cannot compare when it concatenates)
    return acc, df

def main(seeds=3, out='benchmarks/VIT.md'):
    torch.set_num_threads(2)
    log = lambda *a: print(*a, flush=True)
    path, runs, accs, t0 = synth_pets(Path('/tmp/fastcam_vit_pets'), n=N, size=SIZE, seed=0), [], [], time.time()
    for seed in range(seeds):
        acc, df = one_seed(path, seed, log)
        accs.append(acc)
        if df is not None: runs.append(df)
    if len(runs) < 3: raise SystemExit(f"only {len(runs)} of {seeds} ViTs learned: run with more --seeds")
    df = pd.concat(runs)
    df['passes'] = df['passes'].fillna(False).astype(bool)
    v = dict(meta=provenance(2), doc=__doc__.split('\n\n')[1].replace('\n', ' '), seeds=seeds, accuracies=accs,
             learned=sorted(set(df.seed.tolist())), min_accuracy=MIN_ACCURACY, n=N, epochs=EPOCHS, max_items=MAX_ITEMS,
             runs=df[['seed', 'accuracy', 'method', 'layer', 'faithfulness', 'pointing_game', 'passes', 'cost']]
                 .to_dict('records'), seconds=time.time() - t0)
    _, best = vit_table(v)
    v['default'] = None if best is None else dict(method=best.method, layer=best.layer)
    js = Path(out).with_suffix('.json')
    js.write_text(json.dumps(v, indent=1) + '\n')
    Path(out).write_text(text := render_vit(json.loads(js.read_text())))
    log(text)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--out', default='benchmarks/VIT.md')
    a = p.parse_args()
    main(a.seeds, a.out)

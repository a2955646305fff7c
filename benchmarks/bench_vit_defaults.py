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
import argparse, json, time, warnings
from pathlib import Path
import pandas as pd, torch
from fastai.vision.all import ImageDataLoaders, get_image_files, Resize, vision_learner, accuracy, set_seed
from fastcam.all import CAMInterpretation, synth_pets, is_cat, item_boxes, ATTENTION_METHODS, AUTO_METHODS, MODEL_KINDS
warnings.filterwarnings('ignore')

ARCH, SIZE, EPOCHS, N = 'vit_tiny_patch16_224', 64, 12, 400
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
    if acc < 0.9: return None
    interp = CAMInterpretation.from_learner(learn)
    layers = MODEL_KINDS.vit.candidates(learn.model)  # the first norm of the last three blocks
    df = interp.cam_report(methods=METHODS, layers=layers, boxes=item_boxes(interp.dl.items), max_items=40,
                           road=False, steps=8, baseline='zero')  # (as choose_cam: a blur keeps the colours)
    df['seed'], df['accuracy'] = seed, acc
    df.attrs = {}  # (the targets explained: a tensor, which pandas cannot compare when it concatenates)
    return df

def main(seeds=3, out='benchmarks/VIT.md'):
    torch.set_num_threads(2)
    log = lambda *a: print(*a, flush=True)
    path, runs, t0 = synth_pets(Path('/tmp/fastcam_vit_pets'), n=N, size=SIZE, seed=0), [], time.time()
    for seed in range(seeds):
        df = one_seed(path, seed, log)
        if df is not None: runs.append(df)
    if len(runs) < 3: raise SystemExit(f"only {len(runs)} of {seeds} ViTs learned: run with more --seeds")
    df = pd.concat(runs)
    df['passes'] = df['passes'].fillna(False).astype(bool)
    agg = df.groupby(['method', 'layer']).agg(
        faithfulness=('faithfulness', 'mean'), faith_min=('faithfulness', 'min'), faith_max=('faithfulness', 'max'),
        pointing=('pointing_game', 'mean'), point_min=('pointing_game', 'min'), point_max=('pointing_game', 'max'),
        passes=('passes', 'all'), cost=('cost', 'mean')).reset_index().sort_values('faithfulness', ascending=False)
    best = agg[agg.passes].iloc[0] if agg.passes.any() else None
    Path(out).with_suffix('.json').write_text(json.dumps(dict(
        runs=df[['seed', 'accuracy', 'method', 'layer', 'faithfulness', 'pointing_game', 'passes', 'cost']]
            .to_dict('records'),
        default=None if best is None else dict(method=best.method, layer=best.layer)), indent=1) + '\n')
    rng = lambda m, lo, hi: f"{m:.2f} ({lo:.2f}–{hi:.2f})"
    L = ["# Which map to trust on a ViT", "", __doc__.split('\n\n')[1].replace('\n', ' '), "",
         f"{len(runs)} of {seeds} models learned (accuracy "
         + ', '.join(f"{a:.2f}" for a in df.groupby('seed').accuracy.first()) + f"); {N} images, {EPOCHS} epochs; "
         "40 validation items per model; mean (min–max) over the models. The cost is `cam_report`'s timing, with "
         "no other run kept off the machine: `METHODS.md` measures each method's cost.", "",
         "| method | layer | faithfulness | pointing game | passes both sanity checks on every model "
         "| cost (indicative) |",
         "|---|---|---|---|---|---|"]
    L += [f"| `{r.method}` | `{r.layer}` | {rng(r.faithfulness, r.faith_min, r.faith_max)} | "
          f"{rng(r.pointing, r.point_min, r.point_max)} | {'yes' if r.passes else 'no'} | {r.cost:.2f}× |"
          for r in agg.itertuples()]
    L += ["", "Chosen: " + ("none passes" if best is None else f"`{best.method}` at `{best.layer}`") + ".", "",
          f"Run time: {time.time() - t0:.0f} s.", ""]
    Path(out).write_text('\n'.join(L))
    log('\n'.join(L))

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--out', default='benchmarks/VIT.md')
    a = p.parse_args()
    main(a.seeds, a.out)

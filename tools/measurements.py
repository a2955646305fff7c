"""What the notebooks measure, kept: each measuring cell writes one JSON file of `nbs/measurements/` with `record`
(with the commit it measured), and the cells that state those figures render them from the files (`defaults_table`),
so that no figure in the docs is typed by hand. Notebooks import it from a hidden cell (`sys.path` gets `../tools`).

Standard library only."""
from __future__ import annotations
import json, statistics, subprocess, time
from pathlib import Path

HERE = Path('measurements')  # relative to the notebooks' folder, where they run

def record(name:str, data, folder:Path=HERE)->dict:
    "Write `data` to `folder/name.json` with the commit and date it was measured at; return what was written"
    git = lambda *a: subprocess.run(['git', *a], capture_output=True, text=True).stdout.strip()
    res = dict(commit=git('rev-parse', '--short=10', 'HEAD') or 'unknown', date=time.strftime('%Y-%m-%d'), data=data)
    Path(folder).mkdir(exist_ok=True)
    (Path(folder)/f'{name}.json').write_text(json.dumps(res, indent=1) + '\n')
    return res

def recorded(name:str, folder:Path=HERE)->dict:
    "What `record(name, ...)` wrote"
    fn = Path(folder)/f'{name}.json'
    if not fn.exists(): raise FileNotFoundError(f"{fn} is missing: run the notebook that measures it (make notebooks)")
    return json.loads(fn.read_text())

def spread(xs:list)->str:
    "Mean (min–max) of several models' values, or the one value"
    return f"{xs[0]:.2f}" if len(xs) == 1 else f"{statistics.mean(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"

def _layer(name:str)->str:
    "A CNN layer's dotted name as a reader indexes it: `'0.4'` is `model[0][4]`"
    return 'model' + ''.join(f'[{k}]' for k in name.split('.'))

def rule_stage(runs:list, min_side:int)->dict:
    "Of one model's measured stages, the one a CNN's default takes: the deepest with maps at least `min_side` a side"
    fine = [r for r in runs if r['side'] >= min_side]
    return min(fine, key=lambda r: r['side']) if fine else max(runs, key=lambda r: r['side'])

def defaults_table(min_side:int, # `fastcam.kinds.MIN_SIDE`: the stage a CNN's default takes at each size
                   folder:Path=HERE)->str:
    """The table of defaults: each learner kind's default at each size measured, its pointing game and deletion AUC
    (mean and range over the models), from the files measured"""
    pets, shapes, unets, text = (recorded(n, folder) for n in ('pets_sizes', 'shapes_sizes', 'unet_seeds', 'text_seeds'))
    rows = []  # (kind, size, default, runs, pointing key, file record, notebook)
    models = {}  # pets: (size, seed) -> the stages measured
    for r in pets['data']: models.setdefault((r['size'], r['seed']), []).append(r)
    for size in sorted({s for s, _ in models}):
        runs = [rule_stage(v, min_side) for (s, _), v in sorted(models.items()) if s == size]
        rows.append(('single-label CNN (pets)', size, _stages(runs), runs, 'pointing_game', pets, '14_trust'))
    decoder = '`gradcam` @ last decoder block'
    for kind, name in (('multi-label', 'multi-label CNN (shapes)'), ('segmentation', 'segmentation U-Net (shapes)'),
                       ('regression', 'regression CNN (shapes)')):
        if kind == 'segmentation':  # at 64 px: the U-Nets that 21_shapes compares at the encoder and the decoder
            rows.append((name, 64, decoder, unets['data'], 'last_decoder_block', unets, '21_shapes'))
        for size in sorted({r['size'] for r in shapes['data'] if r['kind'] == kind}):
            runs = [r for r in shapes['data'] if r['kind'] == kind and r['size'] == size]
            default = _stages(runs, decoder if kind == 'segmentation' else None)
            rows.append((name, size, default, runs, 'pointing_game', shapes, '21_shapes'))
    L = ["| learner kind | size | default method @ layer (maps) | pointing game | deletion AUC | models | notebook (commit) |",
         "|---|---|---|---|---|---|---|"]
    for kind, size, default, runs, point, rec, nb in rows:
        L.append(f"| {kind} | {size} px | {default} | {spread([r[point] for r in runs])} | "
                 f"{spread([r['deletion_auc'] for r in runs])} | {len(runs)} | `{nb}` (`{rec['commit']}`) |")
    runs = text['data']
    L.append(f"| text AWD-LSTM (reviews) | any length | `intgrad` over the embedding | "
             f"{spread([r['pointing_game'] for r in runs])} | {spread([r['deletion_auc'] for r in runs])} | "
             f"{len(runs)} | `22_text` (`{text['commit']}`) |")
    return '\n'.join(L)

def _stages(runs:list, name:str|None=None)->str:
    "The default method and the stages the default took on these models (or its `name`), with their maps' sides"
    where = name or '`gradcam` @ ' + ', '.join(f"`{_layer(l)}`" for l in sorted({r['layer'] for r in runs}))
    return where + f" ({'/'.join(f'{s}x{s}' for s in sorted({r['side'] for r in runs}))})"

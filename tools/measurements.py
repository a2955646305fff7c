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

def defaults_table(folder:Path=HERE)->str:
    """The table of defaults: each learner kind's default at each size measured, its pointing game and deletion AUC
    (mean and range over the models), from the files measured"""
    pets, shapes, text = (recorded(n, folder) for n in ('pets_sizes', 'shapes_sizes', 'text_seeds'))
    groups = {}  # (kind, size) -> (runs, file record, notebook)
    for r in pets['data']:
        if r['default']: groups.setdefault(('single-label CNN (pets)', r['size']), ([], pets, '14_trust'))[0].append(r)
    names = {'multi-label': 'multi-label CNN (shapes)', 'regression': 'regression CNN (shapes)',
             'segmentation': 'segmentation U-Net (shapes)'}
    for r in shapes['data']: groups.setdefault((names[r['kind']], r['size']), ([], shapes, '21_shapes'))[0].append(r)
    L = ["| learner kind | size | default method @ layer (maps) | pointing game | deletion AUC | models | notebook (commit) |",
         "|---|---|---|---|---|---|---|"]
    kinds = ['single-label CNN (pets)', names['multi-label'], names['segmentation'], names['regression']]
    for kind in kinds:
        for (k, size), (runs, rec, nb) in sorted(groups.items(), key=lambda g: g[0][1]):
            if k != kind: continue
            layers = sorted({r['layer'] for r in runs})
            where = 'last decoder block' if 'U-Net' in kind else ', '.join(f"`{_layer(l)}`" for l in layers)
            sides = sorted({r['side'] for r in runs})
            L.append(f"| {kind} | {size} px | `gradcam` @ {where} ({'/'.join(f'{s}x{s}' for s in sides)}) | "
                     f"{spread([r['pointing_game'] for r in runs])} | {spread([r['deletion_auc'] for r in runs])} | "
                     f"{len(runs)} | `{nb}` (`{rec['commit']}`) |")
    runs = text['data']
    L.append(f"| text AWD-LSTM (reviews) | any length | `intgrad` over the embedding | "
             f"{spread([r['pointing_game'] for r in runs])} | {spread([r['deletion_auc'] for r in runs])} | "
             f"{len(runs)} | `22_text` (`{text['commit']}`) |")
    return '\n'.join(L)

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

def defaults_table(folder:Path=HERE)->str:
    "The table of defaults: each learner kind's default, its pointing game and deletion AUC, from the files measured"
    pets, shapes = recorded('pets_seeds', folder), recorded('shapes_one_model', folder)
    unets, text = recorded('unet_seeds', folder), recorded('text_one_model', folder)
    rows = [('single-label CNN (pets)', '`gradcam` @ `model[0]`', pets, 'default_pointing', 'default_deletion',
             '14_trust'),
            ('multi-label CNN (shapes)', '`gradcam` @ `model[0]`', shapes, 'multilabel_pointing',
             'multilabel_deletion', '21_shapes'),
            ('segmentation U-Net (shapes)', '`gradcam` @ last decoder block', unets, 'last_decoder_block',
             'deletion_auc', '21_shapes'),
            ('regression CNN (shapes)', '`gradcam` @ `model[0]`', shapes, 'regression_pointing',
             'regression_deletion', '21_shapes'),
            ('text AWD-LSTM (reviews)', '`intgrad` over the embedding', text, 'pointing_game', 'deletion_auc',
             '22_text')]
    L = ["| learner kind | default method @ layer | pointing game | deletion AUC | models | notebook (commit) |",
         "|---|---|---|---|---|---|"]
    for kind, default, rec, point, dele, nb in rows:
        runs = rec['data'] if isinstance(rec['data'], list) else [rec['data']]
        L.append(f"| {kind} | {default} | {spread([r[point] for r in runs])} | {spread([r[dele] for r in runs])} | "
                 f"{len(runs)} | `{nb}` (`{rec['commit']}`) |")
    return '\n'.join(L)

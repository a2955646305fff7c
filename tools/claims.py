"""What the README states from measurements and tests, rendered: no figure or tick in it is typed by hand.

A markdown cell of `nbs/index.ipynb` holds `{{ name }}` where a rendered claim goes; `tools/make_readme.py` (the
README) and `tools/make_docs.py` (the site's home page) replace it with `CLAIMS[name](root)`:

- `methods_table`: the method table, its costs from `benchmarks/methods.json` (`make bench`), its ticks from
  `tests/peer_ticks.py`, each a link to the test that compares with that peer's class, and the footnotes there.
- `defaults_table`, `min_side`: the table of defaults and the CNN rule's threshold (`nbs/measurements`, `kinds.py`).
- `costly_methods`: Score-CAM, SS-CAM, IS-CAM, Ablation-CAM and LeGrad against the fastest peer, with the machine
  (`benchmarks/methods.json`).
- `hf_pointing`: the word-level pointing game of the small BERTs `23_hf` trains (`nbs/measurements/hf_seeds.json`).

Standard library only: `make readme` runs without the virtual environment."""
from __future__ import annotations
import importlib.util, json, re
from pathlib import Path

ROOT = Path(__file__).parents[1]
PEERS = ('pytorch-grad-cam', 'torchcam', 'captum')
SUPERSCRIPT = str.maketrans('0123456789', '⁰¹²³⁴⁵⁶⁷⁸⁹')

def peer_ticks(root:Path=ROOT)->dict:
    "`PEER_TICKS` of `tests/peer_ticks.py`"
    spec = importlib.util.spec_from_file_location('peer_ticks', Path(root)/'tests'/'peer_ticks.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod.PEER_TICKS

def ratio(r)->str: return f"{r[1] if isinstance(r, list) else r:.2f}×"

def methods_table(root:Path=ROOT)->str:
    "The README's method table: one row per method of `make bench`'s last run, with the peers' ticks and footnotes"
    bench, ticks = json.loads((Path(root)/'benchmarks'/'methods.json').read_text()), peer_ticks(root)
    rows = {m: (r['family'], r['time']) for m, r in bench['methods'].items() if '@' not in m}
    image = {m: (f, ratio(t['fastcam']), t) for m, (f, t) in rows.items() if f != 'attention'}
    text = {m: ('tokens', ratio(r) + ' (`get_preds`)', {}) for m, r in bench['text'].items()}
    attention = {m: (f, ratio(t['fastcam']) + ' (ViT-S)', t) for m, (f, t) in rows.items() if f == 'attention'}
    notes, L = [], ["| method | family | pytorch-grad-cam | torchcam | captum | fastcam time ÷ forward | "
                    "peers' time ÷ forward |", "|---|---|---|---|---|---|---|"]
    def tick(m, peer):
        if (m, peer) not in ticks: return ''
        cls, test, mark, note = ticks[m, peer]
        if note and note not in notes: notes.append(note)
        shown = cls.rsplit('.', 1)[1] if peer == 'captum' and mark == '✓' else mark
        sup = str(notes.index(note) + 1).translate(SUPERSCRIPT) if note else ''
        file, name = test.split('::')
        return f'[{shown}{sup}](tests/{file} "{name}")'
    for m, (family, cost, t) in {**image, **text, **attention}.items():
        peers = ', '.join(f"{p} {ratio(t[p])}" for p in PEERS if p in t)
        L.append(f"| `{m}` | {family} | " + ' | '.join(tick(m, p) for p in PEERS) + f" | {cost} | {peers} |")
    missing = sorted({m for m, _ in ticks} - {**image, **text, **attention}.keys())
    if missing: raise ValueError(f"tests/peer_ticks.py names methods that benchmarks/methods.json lacks: {missing}")
    return '\n'.join(L + [''] + [f"{i}. {n}." for i, n in enumerate(notes, 1)])

RERUNS = {'scorecam': 'Score-CAM', 'sscam': 'SS-CAM', 'iscam': 'IS-CAM', 'ablationcam': 'Ablation-CAM'}

def costly_methods(root:Path=ROOT)->str:
    """The README's sentence on the methods that re-run the model, and on LeGrad: fastcam's time ÷ the fastest peer's
    for the same method, its memory ÷ plain inference, and where and when `make bench` measured them"""
    v = json.loads((Path(root)/'benchmarks'/'methods.json').read_text())
    rows = v['methods']
    def vs(m):
        t = rows[m]['time']
        return f"{t['fastcam'][1] / min(t[p][1] for p in PEERS if p in t):.2f}×"
    mem = sorted(rows[m]['mem']['fastcam'] for m in RERUNS)
    runs = {(r.get('again') or v['meta'])['machine'] + f" at commit `{(r.get('again') or v['meta'])['commit']}`"
            for r in (rows[m] for m in (*RERUNS, 'legrad', 'legrad@lean'))}
    fast, lean = rows['legrad'], rows['legrad@lean']
    return (f"Measured by `make bench` on {' and '.join(sorted(runs))}: " + ', '.join(
        f"{name} {vs(m)}" for m, name in RERUNS.items()) + " the time of the fastest peer's class for the same method "
        f"(same model, layer, batch, class and masked-input batch size), at {mem[0]:.2f}–{mem[-1]:.2f}× the memory of "
        f"plain inference; LeGrad {vs('legrad')} torchcam's time where the blocks' graph fits in memory (kept from the "
        f"forward, {fast['mem']['fastcam']:.2f}× the memory of inference against torchcam's "
        f"{fast['mem']['torchcam']:.2f}×), and where it does not, with each block run again, "
        f"{lean['time']['fastcam'][1] / fast['time']['torchcam'][1]:.2f}× torchcam's time at "
        f"{lean['mem']['fastcam']:.2f}× the memory of inference.")

def _measurements():
    "`tools/measurements.py`, loaded beside this file"
    spec = importlib.util.spec_from_file_location('measurements', Path(__file__).parent/'measurements.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def defaults_table(root:Path=ROOT)->str:
    "The table of defaults that 14_trust renders, from the notebooks' measurement files"
    return _measurements().defaults_table(int(min_side(root)), Path(root)/'nbs'/'measurements')

def min_side(root:Path=ROOT)->str:
    "`fastcam.kinds.MIN_SIDE`, the measured threshold of a CNN's default layer, as the library holds it"
    return re.search(r"^MIN_SIDE = (\d+)", (Path(root)/'fastcam'/'kinds.py').read_text(), re.M)[1]

def hf_pointing(root:Path=ROOT)->str:
    "The word-level text pointing game of each token method on the small BERTs that `23_hf` trains and measures"
    mod = _measurements()
    runs = mod.recorded('hf_seeds', Path(root)/'nbs'/'measurements')['data']
    methods = [k for k in runs[0] if k not in ('seed', 'accuracy', 'auto')]
    chosen = sorted({r['auto'].split(' @ ')[0] for r in runs})
    return (f"on the synthetic reviews, {len(runs)} small BERTs trained here from scratch (validation accuracy "
            f"{mod.spread([r['accuracy'] for r in runs])}) put their top word on the one that carries the label this "
            f"often, by method (mean, and range): " + ', '.join(f"`{m}` {mod.spread([r[m] for r in runs])}"
                                                           for m in methods) +
            f"; `'auto'` chose {' or '.join(f'`{m}`' for m in chosen)}.")

CLAIMS = {'methods_table': methods_table, 'costly_methods': costly_methods, 'defaults_table': defaults_table,
          'min_side': min_side, 'hf_pointing': hf_pointing}

def fill(md:str, root:Path=ROOT)->str:
    "`md` with each `{{ name }}` replaced by its rendered claim"
    def one(m):
        if m[1] not in CLAIMS: raise ValueError(f"{{{{ {m[1]} }}}}: no such claim; known: {sorted(CLAIMS)}")
        return CLAIMS[m[1]](root)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", one, md)

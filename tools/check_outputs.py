"""Fail when a notebook cell draws but its stored outputs lack the drawing: `python tools/check_outputs.py RUN STORED`.

RUN holds the same notebooks as STORED (nbs/), executed by `nbdev-test --save` on a copy; a cell draws when its run
left a picture, a table or HTML. The docs site shows the stored outputs, so a drawing that is not stored is missing
from its page: `make notebooks` stores them."""
import json, sys
from pathlib import Path

DRAWN = {'image/png', 'image/jpeg', 'image/gif', 'image/svg+xml', 'text/html', 'text/markdown'}

def drawn(cell: dict) -> set[str]:
    "The kinds of drawing among a cell's outputs"
    return {k for o in cell.get('outputs', []) for k in o.get('data', {})} & DRAWN

def missing(run: Path, stored: Path) -> list[str]:
    "One line per cell of the notebooks in `run` that drew what its notebook in `stored` does not hold"
    res = []
    for nb in sorted(run.glob('*.ipynb')):
        kept = {c.get('id'): drawn(c) for c in json.loads((stored/nb.name).read_text())['cells']}
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            if lack := drawn(c) - kept.get(c.get('id'), set()):
                src = ''.join(c['source']).strip().splitlines()
                res.append(f"{stored/nb.name} cell {i} ({src[-1][:60] if src else ''!r}) draws "
                           f"{', '.join(sorted(lack))} but has no such stored output")
    return res

if __name__ == '__main__':
    if len(sys.argv) != 3 or not all(Path(a).is_dir() for a in sys.argv[1:]):
        sys.exit(f"usage: python tools/check_outputs.py RUN STORED (two folders of notebooks), not {sys.argv[1:]}")
    run, stored = map(Path, sys.argv[1:3])
    if lines := missing(run, stored):
        sys.exit('\n'.join(lines) + f"\nERROR: {len(lines)} drawing cell(s) without stored outputs: run "
                 "'make notebooks' and commit the notebooks.")
    print(f'check_outputs: every drawing cell of {stored}/ has its output stored')

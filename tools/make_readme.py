"""Write README.md from nbs/index.ipynb (Quarto, and so nbdev-readme, cannot be installed here), its `{{ claims }}`
rendered from the measurements and tests they come from (`tools/claims.py`).

    python3 tools/make_readme.py           # write README.md (make readme)
    python3 tools/make_readme.py --check   # fail, in one line, where README.md differs from what it renders (make test)
"""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from claims import ROOT, fill

HEAD = "<!-- Generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->\n\n"

def cell_md(c, root=ROOT):
    "Markdown of one cell; `#| hide` cells (the test set-up and checks) are left out"
    src = ''.join(c['source'])
    if c['cell_type'] == 'markdown': return fill(src, root)
    lines = src.splitlines()
    if any(l.replace(' ', '') == '#|hide' for l in lines): return ''
    code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
    return f"```python\n{code}\n```" if code else ''

def readme(root=ROOT)->str:
    "The README that `root/nbs/index.ipynb` and the measurements under `root` render"
    cells = json.loads((Path(root)/'nbs'/'index.ipynb').read_text())['cells']
    text = '\n\n'.join(s for s in (cell_md(c, root) for c in cells) if s.strip()) + '\n'
    return HEAD + text.replace("\n```\n\n```python\n", "\n\n")  # code cells split around a hidden one read as one block

def check(root=ROOT)->str|None:
    "One line saying that `root/README.md` differs from its rendering, or None"
    if (Path(root)/'README.md').read_text() != readme(root):
        return ("ERROR: README.md differs from what nbs/index.ipynb, benchmarks/methods.json and tests/peer_ticks.py "
                "render: run 'make readme' and commit (never edit README.md or a measurement by hand)")

if __name__ == '__main__':
    if sys.argv[1:] == ['--check']:
        if msg := check(): sys.exit(msg)
        print("make_readme: README.md is what nbs/index.ipynb and the measurements render")
    elif sys.argv[1:]: sys.exit(f"usage: python3 tools/make_readme.py [--check], not {sys.argv[1:]}")
    else: (ROOT/'README.md').write_text(readme())

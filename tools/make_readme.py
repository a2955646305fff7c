"Write README.md from nbs/index.ipynb (Quarto, and so nbdev-readme, cannot be installed here)."
import json, sys
from pathlib import Path

def cell_md(c):
    "Markdown of one cell; `#| hide` cells (the test set-up and checks) are left out"
    src = ''.join(c['source'])
    if c['cell_type'] == 'markdown': return src
    lines = src.splitlines()
    if any(l.replace(' ', '') == '#|hide' for l in lines): return ''
    code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
    return f"```python\n{code}\n```" if code else ''

def main(nb='nbs/index.ipynb', out='README.md'):
    cells = json.loads(Path(nb).read_text())['cells']
    text = '\n\n'.join(s for s in map(cell_md, cells) if s.strip()) + '\n'
    text = text.replace("\n```\n\n```python\n", "\n\n")  # code cells split around a hidden one read as one block
    Path(out).write_text("<!-- Generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->\n\n" + text)

if __name__ == '__main__': main(*sys.argv[1:])

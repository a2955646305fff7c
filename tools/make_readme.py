"Write README.md from nbs/index.ipynb (Quarto, and so nbdev-readme, cannot be installed here)."
import json, sys
from pathlib import Path

def cell_md(c):
    src = ''.join(c['source'])
    if c['cell_type'] == 'markdown': return src
    code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
    return f"```python\n{code}\n```" if code else ''

def main(nb='nbs/index.ipynb', out='README.md'):
    cells = json.loads(Path(nb).read_text())['cells']
    text = '\n\n'.join(s for s in map(cell_md, cells) if s.strip()) + '\n'
    Path(out).write_text("<!-- Generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->\n\n" + text)

if __name__ == '__main__': main(*sys.argv[1:])

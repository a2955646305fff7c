"""Build the docs site from the notebooks with MkDocs (Material), no Quarto: `python tools/make_docs.py [--out _site]`.

Home is the README's content (`nbs/index.ipynb`, which `make readme` writes it from, with its outputs); then one
page per notebook in `nbs/`, in their order, with their prose, code and stored outputs (`make notebooks` refreshes
those); an API page per module from the docments, as nbdev's `show_doc` gives them; the benchmark write-ups.
Pages are named as nbdev names them (`00_core.ipynb` -> `core.html`), so the `Docs:` link that
`nbdev-export` ends each module docstring with (the `Documentation` URL of `pyproject.toml` + `core.html.md`) is a
page of this site: each page's markdown is written beside it as `<page>.html.md`."""
import argparse, base64, importlib, inspect, json, re, shutil, sys, tomllib
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from claims import fill  # the README's `{{ claims }}`, rendered from their measurements as make_readme does

ROOT = Path(__file__).resolve().parents[1]
NBS, LIB = ROOT/'nbs', 'fastcam'
ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')

def project_urls() -> dict:
    "`[project.urls]` of pyproject.toml: the one place the docs and repository addresses are set"
    return tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['urls']

def page_name(nb: Path) -> str:
    "nbdev's page name of a notebook, as in the `Docs:` links it writes: `00_core.ipynb` -> `core`"
    from nbdev.config import nbpath2html
    return nbpath2html(nb).stem

def notebooks() -> list[Path]:
    "The notebooks that become pages after the home page, in their order"
    return sorted(p for p in NBS.glob('*.ipynb') if p.stem != 'index')

def directives(src: str) -> dict:
    "nbdev's `#| name args` lines at the top of a code cell"
    res = {}
    for line in src.splitlines():
        if not line.startswith('#|'): break
        name, _, args = line[2:].strip().partition(' ')
        res[name.rstrip(':')] = args.strip()
    return res

def rewrite_links(md: str, repo: str, prefix: str = '') -> str:
    "Links to notebooks become links to their pages; to files the site does not hold, links to the repository"
    def fix(m):
        text, url = m.group(1), m.group(2)
        if re.match(r'^[a-z]+:|^#', url): return m.group(0)
        path, _, anchor = url.partition('#')
        p = Path(path)
        if p.suffix == '.ipynb': new = f'{prefix}{page_name(p)}.md'
        elif path.startswith(('images/', 'benchmarks/')) and p.suffix in ('.png', '.md', '.gif', '.jpg'):
            new = prefix + path  # the site holds these
        else: new = f'{repo}/blob/main/{path}'
        return f'[{text}]({new}{"#" + anchor if anchor else ""}{m.group(3) or ""})'
    return re.sub(r'\[([^\]]*)\]\(([^)\s]+)( "[^"]*")?\)', fix, md)  # (a title, as the method table's, kept)

def fenced(text: str, lang: str = 'text') -> str:
    fence = '````' if '```' in text else '```'
    return f'{fence}{lang}\n{text.rstrip()}\n{fence}'

PROGRESS = re.compile(r'\|[█-]*\| *\d+\.\d+% \[')  # a fastprogress bar, as a console shows it

def stream_text(text: str) -> str:
    """A stream as a terminal leaves it: ANSI codes out, each line as `\\r` last rewrote it, progress bars (which a
    page cannot animate) out"""
    lines = (([s for s in l.split('\r') if s] or [''])[-1] for l in ANSI.sub('', text).split('\n'))
    return '\n'.join(l for l in lines if l.strip(' █') and not PROGRESS.search(l))

WARNING = re.compile(r'^\S+:\d+: \w*Warning: .*(\n[ \t]+.*)*\n?', re.M)

def output_md(out: dict, files: Path, stem: str) -> str:
    "Markdown for one stored output; pictures are written to `files` and linked; libraries' warnings are left out"
    kind = out['output_type']
    if kind == 'stream':
        text = stream_text(''.join(out['text']))
        if out.get('name') == 'stderr': text = WARNING.sub('', text)
        return fenced(text) if text.strip() else ''
    if kind == 'error': return fenced(ANSI.sub('', '\n'.join(out['traceback'])))
    data = out.get('data', {})
    for mime, ext in (('image/png', 'png'), ('image/jpeg', 'jpg'), ('image/gif', 'gif')):
        if mime in data:
            files.mkdir(parents=True, exist_ok=True)
            (files/f'{stem}.{ext}').write_bytes(base64.b64decode(''.join(data[mime])))
            alt = ''.join(data.get('text/plain', 'output')).replace('<', '').replace('>', '').replace('\n', ' ')
            return f'![{alt}]({files.name}/{stem}.{ext})'
    if 'image/svg+xml' in data: return '<div class="nb-output">' + ''.join(data['image/svg+xml']) + '</div>'
    if 'text/html' in data: return '<div class="nb-output" markdown="0">\n' + ''.join(data['text/html']) + '\n</div>'
    if 'text/markdown' in data: return ''.join(data['text/markdown'])
    if 'text/plain' in data: return fenced(ANSI.sub('', ''.join(data['text/plain'])))
    return ''

def notebook_md(nb_path: Path, out_dir: Path, repo: str) -> str:
    "One notebook as one markdown page: prose, code without nbdev's directives, and the outputs it stored"
    cells, name, parts = json.loads(nb_path.read_text())['cells'], page_name(nb_path), []
    files = out_dir/f'{name}_files'
    for i, c in enumerate(cells):
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            parts.append(rewrite_links(fill(src), repo))
            continue
        if c['cell_type'] != 'code': continue
        d = directives(src)
        if {'hide', 'default_exp'} & d.keys(): continue
        code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
        if code and d.get('echo') != 'false': parts.append(fenced(code, 'python'))
        if d.get('output') == 'false': continue
        parts += [s for j, o in enumerate(c.get('outputs', [])) if (s := output_md(o, files, f'cell{i}_{j}'))]
    if nb_path.stem != 'index':  # the home page is the README's content, as it is
        src = f'[{nb_path.relative_to(ROOT)}]({repo}/blob/main/{nb_path.relative_to(ROOT)})'
        api = f'[API of `{LIB}.{name}`](api/{name}.md)' if has_api(name) else ''
        parts.insert(1, f'*From {src}.{" " + api + "." if api else ""}*')  # after the title and its summary
    return '\n\n'.join(parts) + '\n'

def has_api(name: str) -> bool:
    "Whether a page's module gets an API page (`fastcam.all` only re-exports)"
    return (ROOT/LIB/f'{name}.py').exists() and name != 'all'

def _resolve(mod, dotted: str):
    "The object `dotted` names in `mod`; a property as its getter"
    o = mod
    for part in dotted.split('.'): o = inspect.getattr_static(o, part) if inspect.isclass(o) else getattr(o, part)
    o = o.__func__ if isinstance(o, (staticmethod, classmethod)) else o
    return o.fget if isinstance(o, property) else o

def _line(o) -> int | None:
    try: return inspect.getsourcelines(inspect.unwrap(o))[1]
    except (TypeError, OSError): return None

def public_names(mod) -> list[tuple[str, str]]:
    """`(name, anchor)` of every public name of `mod`, in source order: its `__all__`, the public methods of its
    classes, and the methods it patches onto other classes (`Learner.show_cam`); anchors as nbdev's `_modidx` has
    them"""
    from fastcam._modidx import d
    syms, exported = d['syms'].get(mod.__name__, {}), set(mod.__all__)
    names = []
    for key, (url, _) in syms.items():
        dotted = key[len(mod.__name__) + 1:]
        parts = dotted.split('.')
        if any(p.startswith('_') for p in parts): continue
        if parts[0] in exported or len(parts) > 1: names.append((dotted, url.partition('#')[2]))
    names += [(n, n.lower()) for n in mod.__all__ if mod.__name__ + '.' + n not in syms]  # constants
    def order(na):
        o = _resolve(mod, na[0])
        return (_line(o) or 0) if callable(o) else -1, na[0]
    return sorted(names, key=order)

def _value(dotted: str, o) -> str:
    "A constant as code: its type, and its value where that reads well (the names, for a table of kinds or methods)"
    r = repr(o)
    if ' at 0x' in r or len(r) > 300:
        if isinstance(o, str): r = repr(o[:200] + '...')
        else:
            keys = [str(getattr(k, 'name', k)) for k in (o.keys() if hasattr(o, 'keys') else o)] if hasattr(
                o, '__iter__') else []
            if any(' at 0x' in k for k in keys): keys = [f'{len(keys)} items']
            r = f'{type(o).__name__}({", ".join(keys[:12] + ["..."] * (len(keys) > 12 or not keys))})'
    return fenced(f'{dotted}: {type(o).__name__} = {r}', 'python')

def symbol_md(mod, dotted: str, anchor: str, repo: str) -> str:
    "One name's entry: nbdev's `show_doc` markdown (signature with its docments), headed by an anchor `_modidx` uses"
    from nbdev.showdoc import show_doc, BasicMarkdownRenderer
    o = _resolve(mod, dotted)
    head = f'### {dotted} {{#{anchor} data-toc-label="{dotted}"}}'
    if not callable(o): return f'{head}\n\n{_value(dotted, o)}'
    shown = show_doc(o, name=dotted, renderer=BasicMarkdownRenderer)
    if shown is None:  # a fastai Transform's `encodes`/`decodes`: a dispatch over types, with no one signature
        return f'{head}\n\n{fenced(f"{dotted}(x)", "python")}\n\n{inspect.getdoc(o) or ""}'
    md = shown._repr_markdown_()
    sig = re.search(r'```python\n.*?\n```', md, re.S).group(0)  # the signature, each parameter with its docment
    if inspect.isclass(o): sig = sig.replace(f'def {dotted.split(".")[-1]}(', f'class {dotted.split(".")[-1]}(', 1)
    # the docstring without the numpy-style Parameters section `help()` gets: the docments above say it
    doc = inspect.cleandoc(re.split(r'\n\s*Parameters\n-{3,}\n', inspect.getdoc(o) or '')[0])
    line, src = _line(o), inspect.getsourcefile(inspect.unwrap(o))
    link = ''
    if line and src and Path(src).resolve().is_relative_to(ROOT):
        link = f'\n\n[source]({repo}/blob/main/{Path(src).resolve().relative_to(ROOT)}#L{line})'
    return f'{head}\n\n{sig}\n\n{doc}{link}'

def api_md(modname: str, repo: str) -> str:
    "The API page of module `modname`: its summary, then an entry per public name"
    mod = importlib.import_module(f'{LIB}.{modname}')
    summary = (mod.__doc__ or '').split('\n\nDocs:')[0].strip()
    items = [symbol_md(mod, n, a, repo) for n, a in public_names(mod)]
    head = f'# {LIB}.{modname}\n\n> {summary}\n\n*Every public name of `{LIB}.{modname}`; its notebook: '
    return head + f'[{modname}](../{modname}.md).*' + '\n\n' + '\n\n'.join(items) + '\n'

def title(md: str, default: str) -> str:
    "A page's title, as the nav shows it: its first heading"
    return next((l[2:].strip() for l in md.splitlines() if l.startswith('# ')), default)

def write_sources(src: Path, repo: str) -> list:
    "Write the site's markdown into `src`; returns MkDocs' `nav`"
    if src.exists(): shutil.rmtree(src)
    (src/'api').mkdir(parents=True)
    (src/'index.md').write_text(notebook_md(NBS/'index.ipynb', src, repo))  # the README's source, with its outputs
    shutil.copytree(ROOT/'images', src/'images')
    (src/'benchmarks').mkdir()
    bench = sorted((ROOT/'benchmarks').glob('*.md'))
    for p in bench: (src/'benchmarks'/p.name).write_text(rewrite_links(p.read_text(), repo, '../'))
    bench_nav = [{title(p.read_text(), p.stem): f'benchmarks/{p.name}'} for p in bench]
    guide, api = [], []
    for nb in notebooks():
        name = page_name(nb)
        (src/f'{name}.md').write_text(md := notebook_md(nb, src, repo))
        guide.append({title(md, name): f'{name}.md'})
        if has_api(name):
            (src/'api'/f'{name}.md').write_text(api_md(name, repo))
            api.append({f'{LIB}.{name}': f'api/{name}.md'})
    (src/'stylesheets').mkdir()
    (src/'stylesheets'/'fastcam.css').write_text(CSS)
    return [{'Home': 'index.md'}, {'Notebooks': guide}, {'API': api}, {'Benchmarks': bench_nav}]

CSS = """.nb-output { overflow-x: auto; margin: 0 0 1em; }
.nb-output table { font-size: .75rem; }
.md-typeset img { max-width: 100%; height: auto; }
"""

def build(out: Path = ROOT/'_site', src: Path = ROOT/'_docs') -> Path:
    "Write the markdown into `src` and build the site into `out` with MkDocs; returns `out`"
    from mkdocs.config import load_config
    from mkdocs.commands.build import build as mk_build
    urls = project_urls()
    nav = write_sources(src, urls['Repository'])
    cfg = load_config(str(ROOT/'mkdocs.yml'), docs_dir=str(src), site_dir=str(out), nav=nav,
                      site_url=urls["Documentation"].rstrip("/") + "/")  # no repo_url: Material would call GitHub's API
    mk_build(cfg)
    for md in src.rglob('*.md'):  # nbdev's markdown twin of each page, where `Docs:` links point
        (out/md.relative_to(src)).with_suffix('.html.md').write_text(md.read_text())
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='Folder the site is written to')
    ap.add_argument('--src', default=str(ROOT/'_docs'), help='Folder for the generated markdown')
    a = ap.parse_args()
    print(f'docs: {build(Path(a.out).resolve(), Path(a.src).resolve())}/index.html')

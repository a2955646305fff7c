"""The library's layout: modules in the notebooks' dependency order, no import circle, no reach into another module's
private names, no module over 600 lines and no export cell over 80 lines"""
import ast, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).parents[1]
LIB, NBS = ROOT/'fastcam', ROOT/'nbs'
MAX_MODULE, MAX_CELL = 600, 80

def module_numbers(nbs:Path=NBS)->dict:
    "`{module: notebook number}` from each numbered notebook's `default_exp`"
    res = {}
    for nb in sorted(nbs.glob('[0-9][0-9]_*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            m = re.search(r'#\|\s*default_exp\s+(\w+)', ''.join(c['source']))
            if m: res[m.group(1)] = int(nb.name[:2])
    return res

def fastcam_imports(tree:ast.AST, name:str)->set:
    "The fastcam modules a module imports, at module level or inside functions (`from .x`, `from fastcam.x`, `import fastcam.x`)"
    res = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1 and mod: res.add(mod.split('.')[0])
            elif node.level == 1: res.update(a.name for a in node.names)
            elif mod == 'fastcam': res.update(a.name for a in node.names)
            elif mod.startswith('fastcam.'): res.add(mod.split('.')[1])
        elif isinstance(node, ast.Import):
            res.update(a.name.split('.')[1] for a in node.names if a.name.startswith('fastcam.'))
    return res - {name}

def private_names(tree:ast.AST)->set:
    "Underscore names a module defines: its top-level functions, classes and assignments, and `self._x` attributes"
    res = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)): res.add(node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name): res.add(n.id)
                    if isinstance(n, ast.Attribute): res.add(n.attr)
    return {n for n in res if n.startswith('_') and len(n) > 1 and not n.startswith('__')}

def used_names(tree:ast.AST)->set:
    "Every name and attribute a module reads or writes"
    return ({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} |
            {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} |
            {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names})

def layout_problems(lib:Path=LIB, nbs:Path=NBS)->list:
    "Every breach of the layout, one line each"
    numbers, trees, problems = module_numbers(nbs), {}, []
    for p in sorted(lib.glob('*.py')):
        if p.stem in ('__init__', '_modidx', 'all'): continue
        trees[p.stem] = ast.parse(p.read_text())
        n = len(p.read_text().splitlines())
        if n > MAX_MODULE: problems.append(f"{p.name} has {n} lines, over {MAX_MODULE}")
    own = {m: private_names(t) for m, t in trees.items()}
    for m, t in trees.items():
        if m not in numbers: problems.append(f"{m}.py comes from no numbered notebook"); continue
        for dep in sorted(fastcam_imports(t, m)):
            if numbers.get(dep, 99) >= numbers[m]:
                problems.append(f"{m} (notebook {numbers[m]:02}) imports {dep} (notebook {numbers.get(dep, 99):02})")
        others = set().union(*(own[o] for o in trees if o != m)) - own[m]
        for name in sorted(used_names(t) & others):
            problems.append(f"{m} uses {name}, a private name of "
                            f"{', '.join(o for o in trees if o != m and name in own[o])}")
    for nb in sorted(nbs.glob('*.ipynb')):
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            s = ''.join(c['source'])
            if c['cell_type'] == 'code' and re.match(r'#\|\s*export', s) and len(s.splitlines()) > MAX_CELL:
                problems.append(f"{nb.name} cell {i} exports {len(s.splitlines())} lines, over {MAX_CELL}")
    return problems

def test_layout():
    problems = layout_problems()
    assert not problems, '\n'.join(problems)

def test_notebooks_import_only_lower_ones():
    "A notebook's own cells (tests and examples too) import only its own module and those of lower-numbered notebooks"
    numbers, bad = module_numbers(), []
    for nb in sorted(NBS.glob('[0-9][0-9]_*.ipynb')):
        n = int(nb.name[:2])
        for c in json.loads(nb.read_text())['cells']:
            if c['cell_type'] != 'code': continue
            for dep in re.findall(r'(?:from|import) fastcam\.(\w+)', ''.join(c['source'])):
                if numbers.get(dep, 99) > n: bad.append(f"{nb.name} imports {dep}")
    assert not bad, '\n'.join(bad)

def _library(tmp_path, files:dict, nbs:dict)->tuple:
    lib, nb_dir = tmp_path/'lib', tmp_path/'nbs'
    lib.mkdir(parents=True); nb_dir.mkdir()
    for name, text in files.items(): (lib/f'{name}.py').write_text(text)
    for fn, (mod, cells) in nbs.items():
        src = [dict(cell_type='code', source=[f'#| default_exp {mod}'])] + [dict(cell_type='code', source=[c]) for c in cells]
        (nb_dir/fn).write_text(json.dumps(dict(cells=src)))
    return lib, nb_dir

def test_layout_finds_circles_private_names_and_sizes(tmp_path):
    "The check fails on what it is there to catch: a circle, an import upwards, a private name, a long module or cell"
    lib, nbs = _library(tmp_path, {
        'low': 'from .high import thing\ndef _helper(): pass\n',
        'high': 'def thing():\n    from fastcam.low import _helper\n    return _helper\n' + 'x = 1\n' * 600,
    }, {'00_low.ipynb': ('low', []), '01_high.ipynb': ('high', ['#| export\n' + 'y = 1\n' * 81])})
    problems = layout_problems(lib, nbs)
    assert 'low (notebook 00) imports high (notebook 01)' in problems
    assert 'high uses _helper, a private name of low' in problems
    assert any(p.startswith('high.py has 603 lines') for p in problems)
    assert any('exports 82 lines' in p for p in problems)
    lib, nbs = _library(tmp_path/'ok', {'low': 'def _helper(): pass\n', 'high': 'from .low import *\n'},
                        {'00_low.ipynb': ('low', []), '01_high.ipynb': ('high', [])})
    assert layout_problems(lib, nbs) == []

"`from fastcam.all import *` in a fresh interpreter gives every public name of every module."
import ast, json, subprocess, sys
from pathlib import Path

LIB = Path(__file__).parents[1]/'fastcam'

def module_all(path):
    "The literal `__all__` nbdev wrote into a module, read from the source (independent of importing it)"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == '__all__':
            return ast.literal_eval(node.value)
    return []

def test_star_import_fresh_interpreter():
    code = ("import json; from fastcam.all import *; import fastcam.all as a; "
            "print(json.dumps([sorted(k for k in globals() if not k.startswith('_')), a.__all__]))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got, all_ = json.loads(r.stdout.strip().splitlines()[-1])
    mods = [p for p in sorted(LIB.glob('*.py')) if not p.name.startswith('_') and p.name != 'all.py']
    expected = {n for p in mods for n in module_all(p)}
    assert len(mods) >= 5 and len(expected) > 30
    assert expected <= set(got), sorted(expected - set(got))
    assert set(all_) == expected and len(all_) == len(expected)
    for name in ('CAMCallback', 'cam_maps', 'CAMInterpretation', 'pointing_game', 'pets_recipe'): assert name in got

"""Every figure the README, the benchmarks' pages and the table of defaults state is rendered from the measurement that
wrote it, and every peer tick names a test that exists: checked here against the files, and against a changed copy
of one stored value, which must make the check fail."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from peer_ticks import PEER_TICKS

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT/'tools'), str(ROOT/'benchmarks')]
import make_readme, claims, measurements, render  # noqa: E402

def copy_tree(tmp_path, *parts):
    "A copy of the repository's files under `tmp_path` that the renderers read"
    for p in parts:
        src, dst = ROOT/p, tmp_path/p
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return tmp_path

# what the README's claims are rendered from
README_SOURCES = ('README.md', 'nbs/index.ipynb', 'benchmarks/methods.json', 'tests/peer_ticks.py', 'fastcam/kinds.py',
                  'nbs/measurements')

def numbers(o, path=()):
    "Every number stored in a measurement, with its path"
    if isinstance(o, bool): return
    if isinstance(o, (int, float)): yield path, o
    elif isinstance(o, dict):
        for k, v in o.items(): yield from numbers(v, (*path, k))
    elif isinstance(o, list):
        for i, v in enumerate(o): yield from numbers(v, (*path, i))

def changed(fn, pick):
    "Change the number of `fn`'s JSON that `pick(paths)` names, as a hand edit would; return its path"
    d = json.loads(fn.read_text())
    path = pick([p for p, _ in numbers(d)])
    o = d
    for k in path[:-1]: o = o[k]
    o[path[-1]] = o[path[-1]] * 1.5 + 0.37
    fn.write_text(json.dumps(d))
    return path

def test_readme_is_rendered():
    assert make_readme.check() is None, make_readme.check()

@pytest.mark.parametrize('which', ['first', 'last'])
def test_readme_check_fails_on_a_changed_measurement(tmp_path, which):
    "Any one cost of the method table, changed in methods.json: the README no longer matches, in one line"
    root = copy_tree(tmp_path, *README_SOURCES)
    assert make_readme.check(root) is None
    costs = lambda paths: [p for p in paths if len(p) > 2 and (p[-2] == 'fastcam' or p[0] == 'text') and p[-1] == 1]
    changed(root/'benchmarks'/'methods.json', lambda ps: costs(ps)[0 if which == 'first' else -1])
    msg = make_readme.check(root)
    assert msg and msg.startswith('ERROR: README.md differs') and '\n' not in msg

def test_readme_check_fails_on_a_changed_tick(tmp_path):
    root = copy_tree(tmp_path, *README_SOURCES)
    t = root/'tests'/'peer_ticks.py'
    t.write_text(t.read_text().replace("('legrad', TC): tc('LeGrad', 'test_attention.py::test_legrad_equals_torchcam')",
                                       "('legrad', TC): tc('LeGrad', 'test_attention.py::test_another')"))
    assert make_readme.check(root)

def test_no_figure_typed_in_the_readme():
    "Outside what the claims render, the README's prose holds no measured figure (a ratio or a decimal)"
    text = ''.join(''.join(c['source']) for c in json.loads((ROOT/'nbs'/'index.ipynb').read_text())['cells']
                   if c['cell_type'] == 'markdown')
    typed = re.findall(r"\d+(?:\.\d+)?×|(?<![\d.])\d+\.\d+(?![\d.])|~\s*\d+", text)  # (not 127.0.0.1)
    assert not typed, typed

def test_benchmarks_are_rendered():
    assert render.stale() == [], render.stale()

@pytest.mark.parametrize('js', list(render.RENDERS))
def test_benchmark_check_fails_on_a_changed_measurement(tmp_path, js):
    folder = copy_tree(tmp_path, *[f'benchmarks/{f}' for f in render.RENDERS],
                       *[f'benchmarks/{md}' for md, _ in render.RENDERS.values()])/'benchmarks'
    assert render.stale(folder) == []
    unrendered = ('seed', 'accuracy', 'cost')  # (VIT.json keeps each run's, which VIT.md does not show)
    measured = lambda ps: [p for p in ps if p[0] not in ('meta', 'learned') and p[-1] not in unrendered]
    changed(folder/js, lambda ps: measured(ps)[len(measured(ps)) // 2])
    lines = render.stale(folder)
    assert len(lines) == 1 and lines[0].startswith(f'ERROR: {folder/render.RENDERS[js][0]} differs')

def test_one_bench_run():
    "RESULTS.md, METHODS.md and VIT.md come from one `make bench`: one commit, one machine, its tree committed"
    metas = [json.loads((ROOT/'benchmarks'/js).read_text())['meta'] for js in render.RENDERS]
    assert len({(m['commit'], m['machine'], m['dirty']) for m in metas}) == 1 and not metas[0]['dirty'], metas
    for md, _ in render.RENDERS.values():
        assert f"at commit `{metas[0]['commit']}`" in (ROOT/'benchmarks'/md).read_text().splitlines()[2]

def stored_markdown(nb, cell_id):
    cell = next(c for c in json.loads(nb.read_text())['cells'] if c.get('id') == cell_id)
    return ''.join(''.join(o['data']['text/markdown']) for o in cell['outputs'] if 'text/markdown' in o.get('data', {}))

def test_defaults_table_is_rendered(tmp_path):
    "14_trust's table of defaults, as stored, is what the notebooks' measurement files render; a changed value is not"
    nb, folder = ROOT/'nbs'/'14_trust.ipynb', ROOT/'nbs'/'measurements'
    from fastcam.kinds import MIN_SIDE
    assert stored_markdown(nb, 'b749c028') == measurements.defaults_table(MIN_SIDE, folder)
    copy = copy_tree(tmp_path, 'nbs/measurements')/'nbs'/'measurements'
    changed(copy/'unet_seeds.json', lambda ps: [p for p in ps if p[-1] == 'last_decoder_block'][0])
    assert measurements.defaults_table(MIN_SIDE, copy) != measurements.defaults_table(MIN_SIDE, folder)

def test_each_tick_names_a_collected_test():
    "Each test that tests/peer_ticks.py names exists (conftest checks that it constructs the peer's class)"
    files = sorted({test.split('::')[0] for _, test, *_ in PEER_TICKS.values()})
    env = {k: v for k, v in os.environ.items() if not k.startswith('PYTEST_')}  # (not as an xdist worker)
    r = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', '-q', '-p', 'no:cacheprovider',
                        *[f'tests/{f}' for f in files]], cwd=ROOT, capture_output=True, text=True, env=env)
    out = r.stdout
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    ids = {l.split('/', 1)[1] for l in out.splitlines() if l.startswith('tests/')}
    missing = [(k, test) for k, (_, test, *_) in PEER_TICKS.items() if test not in ids]
    assert not missing, missing

def test_vit_default_is_the_measured_one():
    "The ViT kind's default method is the one `make bench`'s ViT measurement chose (benchmarks/VIT.json)"
    from fastcam.kinds import MODEL_KINDS
    chosen = json.loads((ROOT/'benchmarks'/'VIT.json').read_text())['default']
    assert chosen is not None and MODEL_KINDS.vit.default_method == chosen['method'], chosen

def test_no_browser_fails_in_one_line():
    "Where chromium cannot be had, `make browser` (which `make test` waits for) fails and says so in one line"
    r = subprocess.run(['make', '-s', 'browser', 'CHROMIUM=/nonexistent/chromium', 'APT=no-such-apt-get'], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.splitlines()[0].startswith('ERROR: no browser for the browser tests'), r.stderr

def test_a_skipped_test_fails_the_run(tmp_path):
    "conftest turns a skip into a failed run, with the reason listed"
    for f in ('conftest.py', 'peer_ticks.py'): shutil.copy(ROOT/'tests'/f, tmp_path/f)
    (tmp_path/'test_skip.py').write_text("import pytest\ndef test_it(): pytest.skip('no such thing here')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith('PYTEST_')}
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', 'test_skip.py'],
                       cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and 'no such thing here' in r.stdout and '1 test(s) skipped' in r.stdout, r.stdout[-1500:]

def test_readme_check_fails_on_a_changed_hf_measurement(tmp_path):
    "The HF pointing game the README states, changed in the notebook's measurement file: the README no longer matches"
    root = copy_tree(tmp_path, *README_SOURCES)
    assert make_readme.check(root) is None
    changed(root/'nbs'/'measurements'/'hf_seeds.json', lambda ps: [p for p in ps if p[-1] == 'intgrad'][0])
    assert make_readme.check(root)

def test_costly_methods_name_the_machine_and_follow_the_peers(tmp_path):
    """The README's sentence on the re-running methods and LeGrad names where `make bench` measured them, and changes
    with a peer's stored time (the ratio is to the fastest peer)"""
    v = json.loads((ROOT/'benchmarks'/'methods.json').read_text())
    said = claims.costly_methods()
    for m in ('scorecam', 'sscam', 'iscam', 'ablationcam', 'legrad'):
        run = v['methods'][m].get('again') or v['meta']
        assert run['machine'] in said and run['commit'] in said, (m, run)
    root = copy_tree(tmp_path, *README_SOURCES)
    assert make_readme.check(root) is None
    changed(root/'benchmarks'/'methods.json',
            lambda ps: [p for p in ps if p[:2] == ('methods', 'sscam') and p[-2:] == ('torchcam', 1)][0])
    assert make_readme.check(root)

"""Every code block of README.md runs as a reader would paste it.

The reader brings `dls`, `item` and `files` (the README says so); here they come from a tiny synthetic pets set, and
`vision_learner` gets `pretrained=False` because CI cannot download weights. Nothing else is changed."""
import re, subprocess, sys
from functools import partial
from pathlib import Path
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt, pytest
import fastai.vision.all as fva
from conftest import make_dls
from fastcam.methods import CAM_METHODS, unregister_method

ROOT = Path(__file__).parents[1]
README = (ROOT/'README.md').read_text()

def blocks(lang): return re.findall(rf"^```{lang}\n(.*?)^```", README, re.M | re.S)

def test_python_blocks_run(pets_path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # what the blocks write (audit.html) goes there
    code = blocks('python')
    assert len(code) >= 4
    monkeypatch.setattr(fva, 'vision_learner', partial(fva.vision_learner, pretrained=False))
    dls = make_dls(pets_path, bs=8)
    ns = dict(dls=dls, item=dls.valid_ds.items[0], files=dls.valid_ds.items[:5], __name__='readme')
    before = set(CAM_METHODS)
    try:
        for i, src in enumerate(code):
            try: exec(compile(src, f'README.md python block {i + 1}', 'exec'), ns)
            finally: plt.close('all')
    finally:  # the README registers a method of its own: leave the registry as the other tests expect it
        for m in set(CAM_METHODS) - before: unregister_method(m)
    assert ns['preds'].shape == (len(dls.valid_ds), 2) and ns['cb'].maps.shape[0] == len(dls.valid_ds)

def test_shell_blocks_name_real_commands():
    "Each command in the README's sh blocks exists: make targets resolve (dry run), CLIs answer --help"
    cmds = [l.split('#')[0].split() for b in blocks('sh') for l in b.splitlines() if l.strip()]
    assert cmds
    answered = set()  # a CLI's --help once is enough, however many lines name it
    for cmd in cmds:
        if cmd[0] in answered: continue
        if cmd[0] == 'make':
            r = subprocess.run(['make', '-n', *cmd[1:]], cwd=ROOT, capture_output=True, text=True)
        elif cmd[0] in ('torchrun', 'accelerate'):  # a launcher and a script of the repo: the script takes its flags
            script = next(o for o in cmd if o.endswith('.py'))
            assert (Path(sys.executable).parent/cmd[0]).exists(), cmd
            r = subprocess.run([sys.executable, ROOT/script, '--help'], capture_output=True, text=True)
            for flag in [o for o in cmd[cmd.index(script):] if o.startswith('--')]: assert flag in r.stdout, (cmd, flag)
        else:
            r = subprocess.run([str(Path(sys.executable).parent/cmd[0]), '--help'], capture_output=True, text=True)
            answered.add(cmd[0])
        assert r.returncode == 0, (cmd, r.stderr[-500:])

CLIS = {'fastcam-pets': [str(Path(sys.executable).parent/'fastcam-pets')],
        'distributed_cams.py': [sys.executable, str(ROOT/'examples'/'distributed_cams.py')]}

def test_cli_help_lists_documented_flags():
    "Each flag the README names in prose is one of the CLI its paragraph is about"
    helps, n = {k: subprocess.run([*cmd, '--help'], capture_output=True, text=True).stdout for k, cmd in CLIS.items()}, 0
    for para in README.split('\n\n'):
        flags = re.findall(r"`(--[a-z\[\]-]+)`", para)
        if not flags: continue
        clis = [k for k in CLIS if k in para]
        assert clis, f"flags {flags} in a paragraph that names none of {list(CLIS)}"
        for flag in flags:
            assert any(flag.replace('[no-]', '') in helps[k] for k in clis), (flag, clis); n += 1
    assert n >= 5

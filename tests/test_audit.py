"""The HTML audit for every learner kind (each item once, images that decode, the same bytes twice, the stated size),
`'auto'`'s table in it, and `fastcam-audit`: a labelled and an unlabelled folder, unreadable images listed, bad input."""
import io, base64, os, re, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from fastai.vision.all import get_image_files
from fastcam.interpret import CAMInterpretation
import fastcam.audit  # noqa: F401 (interp.audit)
from test_unlabelled import KINDS, shapes_path  # noqa: F401 (the learner kinds, and their fixture)

CLI = Path(sys.executable).parent/'fastcam-audit'

def images_of(doc):
    "The embedded images of a report, decoded"
    return [Image.open(io.BytesIO(base64.b64decode(u))) for u in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', doc)]

@pytest.mark.parametrize('kind', list(KINDS))
@pytest.mark.parametrize('labelled', [True, False])
def test_every_kind(kind, labelled, pets_path, shapes_path, tmp_path):
    learn = KINDS[kind](pets_path, shapes_path)
    dl = learn.dls.valid.new(shuffle=False) if labelled else learn.dls.test_dl(learn.dls.valid.items)
    interp = CAMInterpretation.from_learner(learn, dl=dl)
    fn = interp.audit(tmp_path/'audit.html', k=3, size=64, sanity=kind == 'single-label')
    doc, n = fn.read_text(), len(interp.preds)
    assert doc.count(' id="item-') == n and len(set(re.findall(r' id="item-(\d+)"', doc))) == n
    assert ('id="confusion"' in doc) == (labelled and kind in ('single-label', 'text'))
    assert ('id="top-losses"' in doc) == labelled and 'id="least-sure"' in doc
    if kind == 'text': assert '<span title=' in doc and not images_of(doc)  # shaded tokens, no pictures
    else:
        imgs = images_of(doc)
        assert len(imgs) >= n and all(max(im.size) == 64 for im in imgs)
    assert 'http://' not in doc and 'https://' not in doc
    assert interp.audit(tmp_path/'again.html', k=3, size=64, sanity=kind == 'single-label').read_bytes() == fn.read_bytes()

def test_size_per_item_at_128_px(learned, tmp_path):
    "The stated size: at most 60 KB per item at 128 px (about 10 KB, measured), images and all"
    interp = CAMInterpretation.from_learner(learned)
    fn = interp.audit(tmp_path/'audit.html', sanity=False)
    per_item = fn.stat().st_size / len(interp.preds)
    assert per_item <= 60 * 1024, per_item
    assert {im.size for im in images_of(fn.read_text())} == {(128, 128)}

def test_auto_choice_and_report_are_shown(learned, tmp_path):
    interp = CAMInterpretation.from_learner(learned, method='auto', layer='auto')
    interp.cam_report(methods=['gradcam', 'layercam'], max_items=8, road=False, sanity=False)
    doc = interp.audit(tmp_path/'audit.html', sanity=False).read_text()
    assert "chosen by <code>'auto'</code>" in doc and 'The candidates' in doc and 'cam_report, best first' in doc
    assert interp.cam.choice.method in doc and '>cost<' not in doc  # the timing column is left out

def run_cli(*args, timeout=300):
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout)

@pytest.fixture(scope='module')
def exported(tmp_path_factory, learned):
    fn = tmp_path_factory.mktemp('exported')/'learner.pkl'
    learned.export(fn)
    return fn

def test_cli_labelled_folder_with_an_unreadable_image(exported, pets_path, tmp_path):
    folder = tmp_path/'items'; folder.mkdir()
    for f in get_image_files(pets_path)[:6]: (folder/f.name).write_bytes(f.read_bytes())
    (folder/'Broken_99.png').write_bytes(b'not an image')
    r = run_cli(exported, '--path', folder, '--labelled', '--out', tmp_path/'out'/'audit.html', '--no-sanity')
    assert r.returncode == 0, r.stderr[-2000:]
    doc = (tmp_path/'out'/'audit.html').read_text()
    assert doc.count(' id="item-') == 6 and 'Broken_99.png' in doc and 'id="skipped"' in doc
    assert 'id="confusion"' in doc  # labelled by the learner's own label function
    assert re.search(r'wrote .*audit\.html: 6 items, 1 unreadable left out, \d+ KB', r.stdout)

def test_cli_unlabelled_folder(exported, pets_path, tmp_path, capsys):
    from fastcam.audit import audit_cli
    audit_cli.__wrapped__(exported, str(pets_path), out=str(tmp_path/'audit.html'), no_sanity=True, size=64)
    assert 'fastcam-audit: wrote' in capsys.readouterr().out
    doc = (tmp_path/'audit.html').read_text()
    assert 'id="confusion"' not in doc and 'without labels' in doc and 'id="pred-' in doc

def cli_error(capsys, **kw):
    "`fastcam-audit`'s one-line error, run in this process (the command itself runs in the tests above)"
    from fastcam.audit import audit_cli
    with pytest.raises(SystemExit) as e: audit_cli.__wrapped__(**kw)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('fastcam-audit: error: '), err
    return err[0]

def test_cli_bad_input(exported, tmp_path, capsys):
    out = tmp_path/'audit.html'
    (tmp_path/'x.pkl').write_text('hello'); (tmp_path/'empty').mkdir()
    for kw, contains in [(dict(model=tmp_path/'x.pkl'), 'is not a fastai learner'),
                         (dict(path=tmp_path/'empty'), 'No image files'), (dict(path=tmp_path/'nowhere'), 'is not a folder'),
                         (dict(path=tmp_path, layer='nope'), 'nope'), (dict(), 'keeps no items')]:
        assert contains in cli_error(capsys, **{'model': exported, 'out': out, **kw}), kw
        assert not out.exists() and not list(tmp_path.glob('.audit.html.*'))  # nothing half-written

def test_cli_text_learner_from_a_csv(pets_path, shapes_path, tmp_path):
    learn = KINDS['text'](pets_path, shapes_path)
    learn.export(tmp_path/'text.pkl')
    learn.dls.valid.items[['text', 'label']].to_csv(tmp_path/'reviews.csv', index=False)
    r = run_cli(tmp_path/'text.pkl', '--path', tmp_path/'reviews.csv', '--labelled', '--out', tmp_path/'audit.html',
                '--no-sanity')
    assert r.returncode == 0, r.stderr[-2000:]
    doc = (tmp_path/'audit.html').read_text()
    assert doc.count(' id="item-') == len(learn.dls.valid_ds) and '<span title=' in doc and 'id="confusion"' in doc

def test_cli_text_learner_wants_a_csv(pets_path, shapes_path, tmp_path, capsys):
    learn = KINDS['text'](pets_path, shapes_path)
    learn.export(tmp_path/'text.pkl')
    assert 'a CSV file' in cli_error(capsys, model=tmp_path/'text.pkl', path=pets_path, out=tmp_path/'x.html')

import importlib, os, tempfile, numpy as np, pytest, torch
from pathlib import Path
from fastai.vision.all import (ImageDataLoaders, get_image_files, vision_learner, resnet18, error_rate, set_seed,
                               Callback, accuracy)
from fastcam.data import synth_pets, is_cat
from peer_ticks import PEER_TICKS

# Two cores: two threads, or one per worker where pytest-xdist runs two
torch.set_num_threads(1 if int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', 1)) > 1 else 2)

@pytest.fixture(scope='session')
def pets_path(tmp_path_factory): return synth_pets(tmp_path_factory.mktemp('pets'), n=48, size=64, seed=0)

def make_dls(path, bs=16):
    return ImageDataLoaders.from_name_func(path, get_image_files(path), valid_pct=0.25, seed=21, label_func=is_cat,
                                           bs=bs, num_workers=0)

@pytest.fixture(scope='session')
def trained(pets_path):
    "A tiny learner trained for one quick epoch, shared by read-only tests"
    set_seed(0)
    learn = vision_learner(make_dls(pets_path), resnet18, metrics=error_rate, pretrained=False)
    learn.fit(1, 1e-3)
    return learn

@pytest.fixture(scope='session')
def learned(tmp_path_factory):
    "A synthetic pets model that learned (checked): 160 images, 6 epochs from scratch; tests put back what they change"
    path = synth_pets(tmp_path_factory.mktemp('learned'), n=160, size=64, seed=0)
    set_seed(0)
    learn = vision_learner(make_dls(path), resnet18, metrics=accuracy, pretrained=False)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(6, 3e-3)  # (4 learn with 2 torch threads, not 1)
    acc = learn.validate()[1]
    assert acc >= 0.9, f"the model did not learn (accuracy {acc:.2f}): its maps would say nothing"
    return learn

@pytest.fixture
def fresh(pets_path):
    "A fresh untrained learner for tests that change it"
    set_seed(0)
    return vision_learner(make_dls(pets_path), resnet18, metrics=error_rate, pretrained=False)

# Each test that the README's method table names for a peer (tests/peer_ticks.py) must construct that peer's class
def ticked_classes(nodeid:str)->set[str]:
    "The peer classes that tests/peer_ticks.py says the test `nodeid` compares with"
    return {cls for cls, test, *_ in PEER_TICKS.values() if nodeid.split('/')[-1] == test}

@pytest.fixture(autouse=True)
def constructs_its_peer(request, monkeypatch):
    "Fails a test named in tests/peer_ticks.py that never constructs the peer class named with it"
    want, made, failed = ticked_classes(request.node.nodeid), set(), request.session.testsfailed
    for path in want:
        mod, name = path.rsplit('.', 1)
        cls = getattr(importlib.import_module(mod), name)
        def spy(self, *a, _init=cls.__init__, _path=path, **k):
            made.add(_path); _init(self, *a, **k)
        monkeypatch.setattr(cls, '__init__', spy)
    yield
    if want - made and request.session.testsfailed == failed:  # (a test that failed already says why)
        pytest.fail(f"tests/peer_ticks.py names {request.node.nodeid} for {sorted(want - made)}, which it never "
                    "constructs")

@pytest.fixture(autouse=True)
def grad_mode_as_it_was():
    "Fails a test that leaves torch's grad mode off: every later test of its worker would train without gradients"
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("The test left torch's grad mode off (set back on for the tests after it)")

def pytest_sessionfinish(session, exitstatus):
    "A skipped test is a claim left unchecked: the run fails (its reasons are listed by `-rs`)"
    if hasattr(session.config, 'workerinput'): return  # (pytest-xdist: the main process counts every worker's)
    reporter = session.config.pluginmanager.get_plugin('terminalreporter')
    if reporter and (n := len(reporter.stats.get('skipped', []))) and session.exitstatus == 0:
        reporter.write_line(f"ERROR: {n} test(s) skipped: every test must run (see the skip reasons above)", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

# Helpers shared by several test modules

# Independent references for the measures: written out one image and one step at a time, never calling fastcam.metrics
def hand_upsample(m, size):
    "A raw map `(h, w)` upsampled bilinearly (half-pixel centres) to `size`"
    return torch.nn.functional.interpolate(m[None, None].float(), size=size, mode='bilinear', align_corners=False)[0, 0]

def hand_pointing_game(maps, boxes, size):
    "Per item: 1 if the maximum of its upsampled map lies in its box `x0 <= x < x1, y0 <= y < y1`, else 0"
    hits = []
    for m, (x0, y0, x1, y1) in zip(maps, boxes.tolist()):
        i = int(hand_upsample(m, size).argmax()); y, x = divmod(i, size[1])
        hits.append(float(x0 <= x < x1 and y0 <= y < y1))
    return torch.tensor(hits)

def hand_curve_auc(model, x, maps, t, mode, steps):
    """Deletion (or insertion) AUC with a zero baseline: pixels ranked by the upsampled map (ties in raster order),
    round(k·HW/steps) of them removed (inserted) at step k, the class's softmax probability, trapezoids over [0, 1]"""
    res = []
    with torch.no_grad():
        for xi, m, c in zip(x, maps, t):
            H, W = xi.shape[-2:]
            u = hand_upsample(m, (H, W)).flatten().tolist()
            order = sorted(range(H * W), key=lambda p: -u[p])  # (Python's sort is stable: raster order in ties)
            probs = []
            for k in range(steps + 1):
                changed = torch.zeros(H * W, dtype=torch.bool)
                changed[order[:round(k * H * W / steps)]] = True
                keep = ~changed if mode == 'deletion' else changed
                probs.append(float(model(xi[None] * keep.view(1, 1, H, W))[0].softmax(-1)[int(c)]))
            res.append(sum((a + b) / 2 for a, b in zip(probs[1:], probs[:-1])) / steps)
    return torch.tensor(res)

def no_hooks(model):
    return all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in model.modules())

class Boom(Callback):
    "Raises in `after_pred`, before `CAMCallback` gets to compute"
    order = -20
    def after_pred(self): raise RuntimeError('boom')

def panel(fig, ax):
    "RGB pixels of the image drawn on `ax`, read back from the rendered figure"
    fig.canvas.draw()
    buf = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    bb, H = ax.get_images()[0].get_window_extent(), buf.shape[0]
    return buf[int(H - bb.y1) + 1:int(H - bb.y0) - 1, int(bb.x0) + 1:int(bb.x1) - 1]

def quadrants(px):
    "Mean brightness of the inner part of each quadrant: top-left, top-right, bottom-left, bottom-right"
    h, w = px.shape[:2]
    rows, cols = [(int(.05 * h), int(.4 * h)), (int(.6 * h), int(.95 * h))], [(int(.05 * w), int(.4 * w)), (int(.6 * w), int(.95 * w))]
    return [px[r0:r1, c0:c1].mean() for r0, r1 in rows for c0, c1 in cols]

def hot_top_left(h, w):
    m = torch.zeros(h, w); m[:h // 2, :w // 2] = 1.
    return m

def assert_top_left_hot(px):
    tl, tr, bl, br = quadrants(px)
    assert tl > 100 and max(tr, bl, br) < tl / 2, (tl, tr, bl, br)  # bright where the map is high, dimmed elsewhere

# A real browser: Debian's chromium and chromedriver (`make test` installs them where it can), driven by selenium
CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
TEST_OUT = Path(__file__).parent.parent/'test_out'  # screenshots of the browser tests (git-ignored)

@pytest.fixture
def chrome(tmp_path):
    "Headless chromium through selenium; a failure, saying what is missing, where no browser is installed"
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing: pytest.fail(f"no browser: {', '.join(missing)} missing (as root: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              '--disable-dev-shm-usage', '--window-size=1280,1600', f'--user-data-dir={tmp_path/"chrome"}'):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    TEST_OUT.mkdir(exist_ok=True)
    try: yield driver
    finally: driver.quit()

def console_errors(driver)->list:
    "The browser console's errors since the last call"
    return [e['message'] for e in driver.get_log('browser') if e['level'] == 'SEVERE']

"""In a real browser (headless Debian chromium): the HTML audit (every image decodes, a confusion cell's link scrolls
to its items, no console errors; its strategies) and the Gradio app (an image uploaded through the page gives
`learn.predict`'s label and a map), the app's `/explain` endpoint through `gradio_client`, and the Space that
`fastcam-pets` writes."""
import os, socket, subprocess, sys, time
from pathlib import Path
import pytest
from fastcam.pets import pets_recipe
from fastcam.data import synth_pets
from fastcam.app import cam_app
from conftest import TEST_OUT, console_errors

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # no calls home from the app under test

@pytest.fixture(scope='module')
def recipe(tmp_path_factory):
    "The pets recipe's outputs on a small synthetic set: learner.pkl, audit.html, app.py, requirements.txt, examples/"
    out = tmp_path_factory.mktemp('recipe')
    learn, interp, _ = pets_recipe(synth_pets(out/'data', n=40, size=64), out, 'resnet18', 1, 64, 8, False, '0.6',
                                   num_workers=0)
    return learn, interp, out

def test_audit_in_the_browser(recipe, chrome):
    from selenium.webdriver.common.by import By
    learn, interp, out = recipe
    chrome.get((out/'audit.html').as_uri())
    n_img = chrome.execute_script("return document.images.length")
    bad = chrome.execute_script("return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length")
    assert n_img >= len(interp.preds) and bad == 0
    link = chrome.find_elements(By.CSS_SELECTOR, 'a[href^="#cell-"]')[-1]  # the last non-empty cell
    target = link.get_attribute('href').split('#')[1]
    chrome.set_window_size(1280, 600)  # shorter than the page, so following the link has to scroll
    assert chrome.execute_script("return window.scrollY") == 0
    link.click()
    assert chrome.execute_script("return location.hash") == '#' + target
    top, height, scrolled = chrome.execute_script(f"return [document.getElementById('{target}').getBoundingClientRect()"
                                                  f".top, window.innerHeight, window.scrollY]")
    assert scrolled > 0 and -1 < top < height / 2, (top, height, scrolled)  # in view (to the subpixel)
    assert console_errors(chrome) == []
    chrome.save_screenshot(str(TEST_OUT/'audit.png'))

def test_strategies_in_the_browser(recipe, chrome, tmp_path):
    "The audit's Strategies section: before the galleries, a decoded picture per cluster; a member's link scrolls to it"
    from selenium.webdriver.common.by import By
    from fastcam.interpret import CAMInterpretation
    learn, _, _ = recipe
    interp = CAMInterpretation.from_learner(learn, ds_idx=0)  # the training items: enough per class to cluster
    table = interp.strategies(n_neighbours=5)
    chrome.get(interp.audit(tmp_path/'audit.html', sanity=False).as_uri())
    heads = [h.text for h in chrome.find_elements(By.TAG_NAME, 'h2')]
    assert heads.index('Strategies') < heads.index('Galleries')
    figs = chrome.find_elements(By.CSS_SELECTOR, 'figure.strategy')
    assert len(figs) == len(table) and chrome.execute_script(
        "return [...document.querySelectorAll('figure.strategy img')].every(i => i.complete && i.naturalWidth > 0)")
    verdicts = [f.find_element(By.TAG_NAME, 'figcaption').text.split(': ')[1].split(',')[0] for f in figs]
    assert verdicts == sorted(verdicts, key=lambda v: v != 'shortcut')  # shortcut candidates first
    link = figs[-1].find_elements(By.CSS_SELECTOR, 'a[href^="#item-"]')[-1]
    target = link.get_attribute('href').split('#')[1]
    chrome.set_window_size(1280, 600)
    link.click()
    top, height = chrome.execute_script(f"return [document.getElementById('{target}').getBoundingClientRect().top, "
                                        f"window.innerHeight]")
    assert -1 < top < height / 2, (top, height)  # the member's card is in view (to the subpixel)
    assert console_errors(chrome) == []

def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def served(recipe):
    "The app of the recipe's learner, served on 127.0.0.1"
    learn, _, out = recipe
    demo = cam_app(learn, examples=sorted((out/'examples').iterdir()))
    port = free_port()
    demo.launch(server_name='127.0.0.1', server_port=port, prevent_thread_lock=True, quiet=True)
    try: yield learn, out, f'http://127.0.0.1:{port}/'
    finally: demo.close()

def test_app_in_the_browser(served, chrome):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    learn, out, url = served
    item = sorted((out/'examples').iterdir())[0]
    chrome.get(url)
    wait = WebDriverWait(chrome, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'input[type=file]'))
    chrome.find_elements(By.CSS_SELECTOR, 'input[type=file]')[0].send_keys(str(item))
    wait.until(lambda d: item.name in d.find_element(By.TAG_NAME, 'body').text)  # uploaded
    next(b for b in chrome.find_elements(By.TAG_NAME, 'button') if b.text.strip() == 'Explain').click()
    shown = wait.until(lambda d: d.execute_script(
        "const h = [...document.querySelectorAll('h2, .output-class, [data-testid=label-output-value]')]"
        ".map(e => e.textContent.trim()).filter(t => t); return h.length ? h : null"))
    maps = wait.until(lambda d: [i for i in d.find_elements(By.TAG_NAME, 'img')
                                 if d.execute_script("return arguments[0].naturalWidth", i) > 0] or None)
    label = str(learn.predict(item)[0])
    assert label in shown, (label, shown)
    assert maps  # the map over the image
    chrome.save_screenshot(str(TEST_OUT/'app.png'))

def test_explain_endpoint(served):
    from gradio_client import Client, handle_file
    learn, out, url = served
    item = sorted((out/'examples').iterdir())[1]
    client = Client(url, verbose=False)
    scores, picture = client.predict(handle_file(str(item)), 'gradcam', '', api_name='/explain')
    assert scores['label'] == str(learn.predict(item)[0]) and Path(picture).stat().st_size > 0
    (out/'notes.txt').write_text('not an image')
    with pytest.raises(Exception, match='Invalid file type'):  # Gradio checks the file's type
        client.predict(handle_file(str(out/'notes.txt')), 'gradcam', '', api_name='/explain')
    (out/'fake.png').write_text('not an image either')
    with pytest.raises(Exception, match=r'fake\.png is not an image that can be read'):  # fastcam reads it
        client.predict(handle_file(str(out/'fake.png')), 'gradcam', '', api_name='/explain')

def test_space_runs_as_written(recipe, tmp_path):
    "app.py and requirements.txt, as fastcam-pets wrote them, serve /explain (with fastcam installed, as the Space would)"
    from gradio_client import Client, handle_file
    learn, _, out = recipe
    assert 'fastcam[app]' in (out/'requirements.txt').read_text()
    port = free_port()
    env = {**os.environ, 'GRADIO_SERVER_NAME': '127.0.0.1', 'GRADIO_SERVER_PORT': str(port)}
    proc = subprocess.Popen([sys.executable, 'app.py'], cwd=out, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url, start = f'http://127.0.0.1:{port}/', time.time()
        while True:
            try:
                client = Client(url, verbose=False); break
            except Exception:
                if proc.poll() is not None or time.time() - start > 120: raise AssertionError(proc.stdout.read()[-3000:])
                time.sleep(1)
        item = sorted((out/'examples').iterdir())[0]
        scores, _ = client.predict(handle_file(str(item)), 'gradcam', '', api_name='/explain')
        assert scores['label'] == str(learn.predict(item)[0])
    finally:
        proc.terminate(); proc.wait(30)

def test_app_cli_bad_model(tmp_path, capsys):
    from fastcam.app import app_cli
    (tmp_path/'x.pkl').write_text('hello')
    with pytest.raises(SystemExit) as e: app_cli.__wrapped__(str(tmp_path/'x.pkl'))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('fastcam-app: error: ') and 'is not a fastai learner' in err[0], err

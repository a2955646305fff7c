"""The docs site: built from the notebooks by `tools/make_docs.py` (as `make docs` does), served on 127.0.0.1 and read
in a real browser (headless Debian chromium): every page opens with no console error, every image decodes, every
internal link and anchor resolves, the search finds `CAMCallback`; screenshots of the home page and an API page go to
test_out/. Also: each module docstring's `Docs:` link is a page of the site, and the stored-outputs check of
`make test` catches a drawing cell with no stored output."""
import functools, importlib, json, pkgutil, subprocess, sys, threading, tomllib
from html.parser import HTMLParser
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit, unquote
import pytest
import fastcam
from conftest import TEST_OUT, console_errors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from check_outputs import missing  # noqa: E402

@pytest.fixture(scope='module')
def site():
    "The site, built as `make docs` builds it, into test_out/site"
    out = TEST_OUT/'site'
    subprocess.run([sys.executable, str(ROOT/'tools'/'make_docs.py'), '--out', str(out), '--src', str(TEST_OUT/'docs')],
                   check=True, capture_output=True)
    return out

DOCS_URL = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['urls']['Documentation'].rstrip('/') + '/'
BASE = urlsplit(DOCS_URL).path  # where the site is hosted: '/fastcam/'

class _Hosted(SimpleHTTPRequestHandler):
    "The site's folder served under the path of its documentation URL, quietly"
    def translate_path(self, path):
        return super().translate_path('/' + path[len(BASE):] if path.startswith(BASE) else '/no-such-file')
    def log_message(self, *args): pass

@pytest.fixture(scope='module')
def served(site):
    "The site over HTTP on 127.0.0.1 as it would be hosted, under `/fastcam/` (its search index is fetched by a worker)"
    server = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Hosted, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try: yield site, f'http://127.0.0.1:{server.server_address[1]}{BASE}'
    finally: server.shutdown()

class _Ids(HTMLParser):
    def __init__(self):
        super().__init__(); self.ids = set()
    def handle_starttag(self, tag, attrs): self.ids |= {v for k, v in attrs if k in ('id', 'name') and v}

@functools.cache
def page_ids(path: Path) -> frozenset:
    "The anchors a page of the site holds"
    p = _Ids(); p.feed(path.read_text()); return frozenset(p.ids)

def test_site_pages(site):
    "Home, one page per notebook in the notebooks' order, one API page per module, the benchmark write-ups"
    nbs = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if p.stem != 'index')
    pages = [p.split('_', 1)[1] for p in (p.stem for p in nbs)]
    nav = (site/'index.html').read_text()
    assert all((site/f'{p}.html').exists() for p in pages)
    at = [nav.index(f'href="{p}.html"') for p in pages]
    assert at == sorted(at), pages  # in the notebooks' order
    mods = [m.name for m in pkgutil.iter_modules(fastcam.__path__) if not m.name.startswith('_') and m.name != 'all']
    assert sorted(p.stem for p in (site/'api').glob('*.html')) == sorted(mods)
    for m in mods:  # every public name has its entry
        ids = page_ids(site/'api'/f'{m}.html')
        assert not [n for n in importlib.import_module(f'fastcam.{m}').__all__ if n.lower() not in ids], m
    api = (site/'api'/'callback.html.md').read_text()  # the page's markdown twin, before highlighting
    for s in ('class CAMCallback(', '# Layer to hook'):  # its signature, a docment
        assert s in api, s
    assert 'id="learner.show_cam"' in (site/'api'/'interpret.html').read_text()  # a method patched onto fastai's
    assert '#| export' not in (site/'core.html').read_text()
    assert all((site/'benchmarks'/f'{p.stem}.html').exists() for p in (ROOT/'benchmarks').glob('*.md'))
    # every picture a notebook stored (outside its hidden cells) is on its page, the README's on the home page
    for nb, page in zip([*nbs, ROOT/'nbs'/'index.ipynb'], [*pages, 'index']):
        cells = [c for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code'
                 and '#| hide' not in ''.join(c['source'])]
        n = sum(any(k.startswith('image/') for k in o.get('data', {})) for c in cells for o in c.get('outputs', []))
        assert (site/f'{page}.html').read_text().count(f'src="{page}_files/') == n, (page, n)
    assert (site/'shapes.html').read_text().count('src="shapes_files/') >= 5

def test_module_docs_links(site):
    "Each module docstring's `Docs:` link, the `Documentation` URL of pyproject.toml + a page, is a page of the site"
    for m in [m.name for m in pkgutil.iter_modules(fastcam.__path__) if not m.name.startswith('_')]:
        url = importlib.import_module(f'fastcam.{m}').__doc__.rsplit('Docs:', 1)[1].strip()
        assert url.startswith(DOCS_URL), (m, url)
        assert (site/url[len(DOCS_URL):]).is_file(), (m, url)

def test_every_page_in_the_browser(served, chrome):
    "Every page: no console error, every image decoded, every internal link to a page and anchor that exist"
    from selenium.webdriver.support.ui import WebDriverWait
    site, url = served
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html'))
    assert len(pages) > 20
    broken, undecoded, errors = [], [], {}
    for page in pages:
        chrome.get(url + page)
        WebDriverWait(chrome, 30).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"))
        undecoded += [(page, src) for src in chrome.execute_script(
            "return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)")]
        for href in chrome.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)"):
            u = urlsplit(href)
            if not href.startswith(url): continue  # another site: not fetched, the docs are offline
            target = site/unquote(u.path[len(BASE):] or 'index.html')
            if target.is_dir(): target = target/'index.html'
            if not target.is_file() or (u.fragment and target.suffix == '.html'
                                        and unquote(u.fragment) not in page_ids(target)):
                broken.append((page, href))
        if e := console_errors(chrome): errors[page] = e
    assert not undecoded, undecoded
    assert not broken, broken[:20]
    assert not errors, errors

def test_search_and_screenshots(served, chrome):
    "The search finds `CAMCallback` on its API page; screenshots of the home page and of that entry"
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    site, url = served
    chrome.set_window_size(1400, 1000)
    chrome.get(url + 'index.html')
    wait = WebDriverWait(chrome, 30)
    chrome.save_screenshot(str(TEST_OUT/'docs_home.png'))
    box = chrome.find_element(By.CSS_SELECTOR, 'input.md-search__input')  # in the header, on a wide window
    box.click(); box.send_keys('CAMCallback')
    hits = wait.until(lambda d: [a.get_attribute('href') for a in d.find_elements(
        By.CSS_SELECTOR, '.md-search-result__item a') if 'CAMCallback' in a.text] or None)
    assert any(urlsplit(h).path == BASE + 'api/callback.html' for h in hits), hits  # its entries in the API
    chrome.get(url + 'api/callback.html#camcallback')
    wait.until(lambda d: d.execute_script("return document.readyState") == 'complete')
    assert chrome.execute_script("return document.getElementById('camcallback').getBoundingClientRect().top") < 400
    chrome.save_screenshot(str(TEST_OUT/'docs_api.png'))
    assert console_errors(chrome) == []

def test_drawing_cells_need_stored_outputs(tmp_path):
    "The check `make test` runs after the notebooks: a cell whose run drew what its stored notebook lacks is named"
    def nb(*outputs):
        cell = {'cell_type': 'code', 'id': 'a1', 'source': ['plt.plot([1, 2])'], 'outputs': list(outputs),
                'metadata': {}, 'execution_count': None}
        return {'cells': [cell], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    png = {'output_type': 'display_data', 'data': {'image/png': 'iVBOR', 'text/plain': '<Figure>'}, 'metadata': {}}
    (tmp_path/'run').mkdir(); (tmp_path/'nbs').mkdir()
    (tmp_path/'run'/'x.ipynb').write_text(json.dumps(nb(png)))
    (tmp_path/'nbs'/'x.ipynb').write_text(json.dumps(nb()))
    found = missing(tmp_path/'run', tmp_path/'nbs')
    assert len(found) == 1 and 'x.ipynb cell 0' in found[0] and 'image/png' in found[0], found
    (tmp_path/'nbs'/'x.ipynb').write_text(json.dumps(nb(png)))
    assert missing(tmp_path/'run', tmp_path/'nbs') == []

"""The documentation site, checked in a real browser (headless Chromium through Selenium).

The site is built once per session into a temporary folder with `docs/build.py`, or, when GMML_FAST_DOCS_BUILT=1
(`bash run.sh test` sets it after building), the existing _docs/ is used. It is served on 127.0.0.1 (a free port,
stopped at the end) and every page reachable from the landing page is opened: no SEVERE console error, every image
loaded, every same-site link pointing at an existing page (and anchor), every notebook rendered with its stored
figures, the API index listing the main entry points. At a 1300-px window: the top-level pages without the left
sidebar, no table cell of the landing, Results or Fidelity page beyond the window (or the box it scrolls in), the
landing page's figure at most 400 px wide, and library pages with an API card per exported name and the source of
their `#| export` cells collapsed. Screenshots of the landing page and of the GMML tutorial go to
a temporary folder and, when GMML_FAST_SCREENSHOTS=DIR is set, to DIR.

Skipped, with the reason, when Selenium or Chromium/chromedriver (Debian: chromium, chromium-driver) is missing,
or when the site has to be built and the docs tools (`pip install -e .[docs]`) are missing.
"""
import ast, functools, http.server, json, os, re, shutil, subprocess, sys, threading
from collections import deque
from pathlib import Path
from urllib.parse import urljoin, urlsplit, unquote
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted((ROOT/'nbs').glob('*.ipynb'))
CHROMIUM = os.environ.get('GMML_FAST_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
CHROMEDRIVER = os.environ.get('GMML_FAST_CHROMEDRIVER') or shutil.which('chromedriver') or '/usr/bin/chromedriver'
API_NAMES = ('gmml_learner', 'mae_learner', 'finetune_learner', 'gmml_corrupt')

def _need_browser():
    try: import selenium  # noqa: F401
    except ImportError: pytest.skip('selenium is not installed (pip install -e ".[docs]")')
    for what, p in (('chromium', CHROMIUM), ('chromedriver', CHROMEDRIVER)):
        if not Path(p).is_file(): pytest.skip(f'{what} not found at {p} (Debian: apt-get install chromium chromium-driver)')

@pytest.fixture(scope='session')
def site(tmp_path_factory):
    _need_browser()
    if os.environ.get('GMML_FAST_DOCS_BUILT') == '1':
        out = ROOT/'_docs'
        assert (out/'index.html').is_file(), 'GMML_FAST_DOCS_BUILT=1 but _docs/index.html is missing: run `bash run.sh docs`'
        return out
    for mod in ('sphinx', 'myst_nb', 'pydata_sphinx_theme'):
        try: __import__(mod)
        except ImportError: pytest.skip(f'{mod} is not installed, cannot build the site (pip install -e ".[docs]")')
    tmp = tmp_path_factory.mktemp('docs')
    r = subprocess.run([sys.executable, str(ROOT/'docs'/'build.py'), '--out', str(tmp/'site'), '--work', str(tmp/'work'), '-q'],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f'docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}'
    return tmp/'site'

@pytest.fixture(scope='session')
def base_url(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f'http://127.0.0.1:{srv.server_port}/'
    srv.shutdown(); srv.server_close(); th.join(10)

@pytest.fixture(scope='session')
def browser(tmp_path_factory):
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--window-size=1280,1000',
              f'--user-data-dir={tmp_path_factory.mktemp("chromium-profile")}'):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60); drv.set_script_timeout(60)
    yield drv
    drv.quit()

_WAIT_IMAGES = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(i => { i.loading = 'eager'; });
Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })))
  .then(() => done(imgs.map(i => [i.currentSrc || i.src, i.naturalWidth])));
"""

def _page_key(url, base):
    "The site-relative path of a same-site URL, or None for other sites."
    if not url.startswith(base): return None
    path = unquote(urlsplit(url).path)[len(urlsplit(base).path):]
    return path if path and not path.endswith('/') else path + 'index.html'

@pytest.fixture(scope='session')
def crawl(site, base_url, browser):
    "Every page reachable from index.html by same-site links: console errors, images, links, element ids, text."
    pages, todo, seen = {}, deque(['index.html']), {'index.html'}
    while todo:
        key = todo.popleft()
        browser.get(base_url + key)
        imgs = browser.execute_async_script(_WAIT_IMAGES)
        info = browser.execute_script("""return {
            title: document.title,
            links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
            nav: Array.from(document.querySelectorAll('.bd-header a.nav-link, nav.bd-docs-nav a')).map(a => a.href),
            ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id).concat(
                 Array.from(document.querySelectorAll('a[name]')).map(e => e.name)),
            outputImgs: document.querySelectorAll('.cell_output img').length,
            text: document.body.innerText};""")
        info['imgs'] = imgs
        info['severe'] = [e['message'] for e in browser.get_log('browser') if e.get('level') == 'SEVERE']
        pages[key] = info
        for href in info['links']:
            k = _page_key(href.split('#')[0], base_url)
            if k and k.endswith('.html') and k not in seen and (site/k).is_file():
                seen.add(k); todo.append(k)
    return pages

def test_every_nav_page_loads_without_console_errors(crawl, base_url):
    nav = {_page_key(h.split('#')[0], base_url) for p in crawl.values() for h in p['nav']} - {None}
    assert {'results.html', 'fidelity.html', 'library.html', 'tutorials.html', 'api/index.html'} <= nav, sorted(nav)
    assert nav <= set(crawl), f'nav pages not reachable: {sorted(nav - set(crawl))}'
    bad = {k: p['severe'] for k, p in crawl.items() if p['severe']}
    assert not bad, f'SEVERE console messages: {json.dumps(bad, indent=1)[:4000]}'
    assert all(p['title'] and 'Error response' not in p['title'] for p in crawl.values())

def test_every_notebook_has_a_page_with_its_stored_figures(crawl):
    "Each notebook is rendered, and shows as many figures as it stores outputs drawn as PNG (hidden cells aside)."
    import importlib.util
    spec = importlib.util.spec_from_file_location('gmml_fast_docs_build', ROOT/'docs'/'build.py')
    build = importlib.util.module_from_spec(spec); spec.loader.exec_module(build)
    tags_for = build.tags_for
    problems = []
    for nb in NBS:
        page = crawl.get(f'{nb.stem}.html')
        if page is None: problems.append(f'{nb.name}: no page reachable from the landing page'); continue
        cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
        want = sum(1 for c in cells if c['cell_type'] == 'code' and not {'remove-cell', 'remove-output'} & set(tags_for(''.join(c['source'])))
                   for o in c.get('outputs', []) if 'image/png' in o.get('data', {}) and 'text/html' not in o.get('data', {}))
        if page['outputImgs'] != want: problems.append(f'{nb.name}: {want} stored figures, {page["outputImgs"]} shown')
    assert not problems, '; '.join(problems)

def test_every_image_loads(crawl):
    broken = [(k, src[:120]) for k, p in crawl.items() for src, w in p['imgs'] if not w]
    assert not broken, f'images that did not load: {broken[:20]}'

def test_internal_links_resolve(crawl, site, base_url):
    bad = []
    for k, p in crawl.items():
        for href in p['links']:
            target, _, frag = href.partition('#')
            tk = _page_key(target, base_url)
            if tk is None: continue                                  # another site (GitHub): not followed
            if not (site/tk).is_file(): bad.append(f'{k} -> {tk} (no such page)'); continue
            if frag and tk in crawl and unquote(frag) not in crawl[tk]['ids']: bad.append(f'{k} -> {tk}#{frag} (no such anchor)')
    assert not bad, f'{len(bad)} broken internal links: {sorted(set(bad))[:30]}'

def test_api_page_lists_the_main_entry_points(crawl, base_url):
    api = crawl['api/index.html']
    for name in API_NAMES:
        assert re.search(rf'\b{name}\b', api['text']), f'{name} missing from the API page'
        assert any(h.split('#', 1)[-1].endswith(f'.{name}') for h in api['links']), f'no link to the docs of {name}'

def test_results_and_fidelity_pages_show_their_tables(crawl):
    "The Results page shows the tables rendered from the records (no code), its figures, and the Fidelity page one table per method."
    res, fid = crawl['results.html'], crawl['fidelity.html']
    assert 'GMML, 5 epochs' in res['text'] and 'random init' in res['text'] and res['outputImgs'] >= 2
    assert 'import report' not in res['text'] and 'R.label_efficiency_table' not in res['text']     # the rendering code is hidden
    for method in ('GMML', 'MAE', 'SimMIM', 'DRLoc', 'ME', 'FGSM'): assert method in fid['text']
    assert 'switches checked' in fid['text']

def test_screenshots(site, base_url, browser, tmp_path):
    dest = [tmp_path] + ([Path(os.environ['GMML_FAST_SCREENSHOTS'])] if os.environ.get('GMML_FAST_SCREENSHOTS') else [])
    for d in dest: d.mkdir(parents=True, exist_ok=True)
    for page in ('index.html', 'results.html', 'tutorial_gmml_fmnist.html'):
        if not (site/page).is_file(): pytest.fail(f'{page} is missing from the site')
        browser.get(base_url + page)
        browser.execute_async_script(_WAIT_IMAGES)
        height = browser.execute_script('return document.documentElement.scrollHeight')
        browser.set_window_size(1280, min(max(height, 800), 12000))        # the whole page, up to 12,000 px
        try:
            for d in dest:
                f = d/f'{Path(page).stem}.png'
                assert browser.save_screenshot(str(f)) and f.stat().st_size > 10_000, f
        finally: browser.set_window_size(1280, 1000)

# --- layout at a laptop's width (issue 41, item 3) ---------------------------------------------------------------------
WIDE = (1300, 900)                               # the window the layout checks are measured in
TOP_PAGES = ['index.html', 'results.html', 'fidelity.html'] + sorted(f'{p.stem}.html' for p in NBS if p.stem.startswith('tutorial_'))

_LAYOUT = """
const vw = document.documentElement.clientWidth;
const shown = e => !!e && e.getClientRects().length > 0 && e.getBoundingClientRect().width > 0;
const art = document.querySelector('article.bd-article');
const out = [];
for (const c of document.querySelectorAll('article td, article th')) {
  const r = c.getBoundingClientRect();
  if (!r.width) continue;
  let box = c.parentElement, right = vw;            // the nearest ancestor that clips or scrolls sideways
  while (box && box !== document.body) {
    if (getComputedStyle(box).overflowX !== 'visible') { right = Math.min(right, box.getBoundingClientRect().right); break; }
    box = box.parentElement;
  }
  if (r.right > right + 1) out.push([Math.round(r.right), Math.round(right), c.innerText.slice(0, 60)]);
}
return {vw, height: document.documentElement.scrollHeight, article: art ? Math.round(art.getBoundingClientRect().width) : 0,
        primary: shown(document.querySelector('.bd-sidebar-primary')), secondary: shown(document.querySelector('.bd-sidebar-secondary')),
        cellsOutside: out,
        tables: Array.from(document.querySelectorAll('article table')).map(t => Math.round(t.getBoundingClientRect().width))};
"""

@pytest.fixture
def wide_browser(browser):
    browser.set_window_size(*WIDE)
    yield browser
    browser.set_window_size(1280, 1000)

def _open(browser, url):
    browser.get(url)
    browser.execute_async_script(_WAIT_IMAGES)

def test_top_level_pages_use_the_width_and_their_tables_fit(site, base_url, wide_browser):
    """At 1300 px the top-level pages have no left sidebar, Results and Fidelity give their main column most of the window,
    and no table cell of index, Results or Fidelity lies right of the window or of the box it scrolls in (every column
    can be read without scrolling sideways)."""
    problems, report = [], {}
    for page in TOP_PAGES:
        if not (site/page).is_file(): problems.append(f'{page} is missing'); continue
        _open(wide_browser, base_url + page)
        m = wide_browser.execute_script(_LAYOUT)
        report[page] = {k: m[k] for k in ('height', 'article', 'tables')}
        if m['primary']: problems.append(f'{page}: the primary (left) sidebar is shown')
        if page in ('results.html', 'fidelity.html') and m['article'] < 0.75*m['vw']:
            problems.append(f"{page}: main column {m['article']} px of a {m['vw']}-px window")
        if page in ('index.html', 'results.html', 'fidelity.html') and m['cellsOutside']:
            problems.append(f"{page}: {len(m['cellsOutside'])} table cells beyond the window or their scroll box "
                            f"(right edge, limit, text): {m['cellsOutside'][:3]}")
    print(json.dumps(report))
    assert not problems, '\n'.join(problems)

def test_front_page_figure_is_small(base_url, wide_browser):
    "The landing page's first figure (the reconstruction) is at most 400 px wide, so the text starts near the top."
    _open(wide_browser, base_url + 'index.html')
    w, nat = wide_browser.execute_script(
        "const i = document.querySelector('article.bd-article img'); return [i.getBoundingClientRect().width, i.naturalWidth];")
    assert nat > 0 and 100 < w <= 400, (w, nat)

_LIBRARY = """
const vis = e => e.checkVisibility() && e.getBoundingClientRect().height > 0;     // false inside a closed <details>
const exported = Array.from(document.querySelectorAll('.cell_input')).filter(e => /^\\s*#\\|\\s*export\\b/.test(e.textContent));
return {height: document.documentElement.scrollHeight,
        exported: exported.length,
        shown: exported.filter(e => vis(e) || !e.closest('details:not([open])')).length,
        cards: Array.from(document.querySelectorAll('article dl.py > dt.sig')).filter(vis).map(dt => dt.innerText)};
"""

@pytest.mark.parametrize('page, names', [('30_corruption', ('gmml_corrupt', 'GMMLCorruption', 'corruption_steps')),
                                         ('88_step', ('StopOnNonFiniteLoss', 'ForeachAdam'))])
def test_library_pages_show_api_cards_with_the_source_collapsed(site, base_url, wide_browser, page, names):
    """A library page shows one card (signature and docstring) per name of its module's `__all__`, and the source of its
    `#| export` cells collapsed (inside a closed <details>, not rendered until opened)."""
    nb = json.loads((ROOT/'nbs'/f'{page}.ipynb').read_text(encoding='utf-8'))
    mod = next(m[1] for c in nb['cells'] if (m := re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)))
    want = re.search(r'__all__\s*=\s*(\[.*?\])', (ROOT/'gmml_fast'/f'{mod}.py').read_text(encoding='utf-8'), re.S)
    exported = sum(1 for c in nb['cells'] if c['cell_type'] == 'code' and re.match(r'\s*#\|\s*export\b', ''.join(c['source'])))
    _open(wide_browser, base_url + f'{page}.html')
    m = wide_browser.execute_script(_LIBRARY)
    print(page, json.dumps({'height': m['height'], 'exported': m['exported'], 'cards': len(m['cards'])}))
    assert m['exported'] == exported, f"{page}: {exported} export cells in the notebook, {m['exported']} on the page"
    assert m['shown'] == 0, f"{page}: {m['shown']} of {m['exported']} exported cells show their source"
    sig = {re.match(r'(?:class\s+)?(?:[\w.]+\.)?(\w+)', t.strip())[1]: t for t in m['cards'] if re.match(r'(?:class\s+)?[\w.]+', t.strip())}
    for name in ast.literal_eval(want[1]):
        assert name in sig, f'{page}: no API card for {name} (cards: {sorted(sig)})'
    for name in names:
        assert re.search(rf'\b{name}\s*\(.+\)', sig[name], re.S), f'{page}: the card of {name} has no signature: {sig[name]!r}'

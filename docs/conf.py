"""Sphinx configuration of the documentation site. Build it with `python docs/build.py` (or `bash run.sh docs`),
which assembles the source folder (notebook copies and generated pages) and runs Sphinx with this file."""
import importlib.util, inspect, os, re, warnings
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The API pages document this checkout's package: docs/build.py runs `python -m sphinx` from ROOT (so ROOT is first on
# sys.path), and `pip install -e .` points the installed package here too. Anything else would document other code.
_pkg = importlib.util.find_spec('gmml_fast')
if _pkg is None or Path(_pkg.origin).resolve().parent != ROOT/'gmml_fast':
    raise RuntimeError(f"the docs would document the gmml_fast at {_pkg and _pkg.origin}, not this checkout's {ROOT/'gmml_fast'}: "
                       f"build them with `python docs/build.py` or install this checkout (pip install -e .)")
os.environ.setdefault('MPLBACKEND', 'Agg')         # importing the modules must not need a display
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')   # printed while importing timm

_ini = ConfigParser(delimiters=['=']); _ini.read(ROOT/'settings.ini', encoding='utf-8')
cfg = _ini['DEFAULT']

project = cfg['lib_name']
author = cfg['author']
copyright = cfg['copyright']
release = version = cfg['version']

extensions = [
    'myst_nb',                      # notebooks (.ipynb) and MyST markdown pages
    'sphinx.ext.autodoc',           # API pages from the docstrings
    'sphinx.ext.autosummary',       # the API index: one line per public name
    'sphinx.ext.viewcode',          # [source] links to the highlighted module code
    'sphinx.ext.mathjax',
    'sphinx-mathjax-offline',       # MathJax served from the site itself: it works offline
]
exclude_patterns = ['.doctrees', '**/.ipynb_checkpoints']

# notebooks: shown with their stored outputs, never executed
nb_execution_mode = 'off'
nb_merge_streams = True
# markdown outputs (the Results and Fidelity pages' tables, rendered from the records) are MyST, which has tables; CommonMark has none
nb_render_markdown_format = 'myst'
myst_enable_extensions = ['dollarmath', 'colon_fence', 'attrs_inline']   # attrs_inline: ![alt](src){width=400px}
myst_heading_anchors = 3

# API reference: docs/build.py writes one autofunction/autoclass/autodata entry per name of each module's __all__
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autosummary_generate = False
add_module_names = False

html_theme = 'pydata_sphinx_theme'
html_title = project
html_favicon = 'favicon.svg'
html_static_path = ['static']
html_css_files = ['gmml_fast.css']
html_copy_source = False
html_show_sourcelink = False
# Top-level pages (the landing page, Results, Fidelity, the tutorials) have no left sidebar: its navigation is the header's,
# and their wide tables and figures get the width. Results and Fidelity, whose tables have five wide columns, drop the
# right one ("on this page") too. The library notebooks and the API pages keep both.
TOP_LEVEL_PAGES = ('index', 'results', 'fidelity', 'tutorial_*')
FULL_WIDTH_PAGES = ('results', 'fidelity')
html_sidebars = {p: [] for p in TOP_LEVEL_PAGES}
html_theme_options = {
    'navigation_with_keys': False,
    'show_prev_next': True,
    'header_links_before_dropdown': 4,
    'secondary_sidebar_items': {'**': ['page-toc'], **{p: [] for p in FULL_WIDTH_PAGES}},
    'navbar_end': ['theme-switcher', 'navbar-icon-links'],
    'icon_links': [{'name': 'GitHub', 'url': cfg['git_url'], 'icon': 'fa-brands fa-github', 'type': 'fontawesome'}],
}
html_context = {'default_mode': 'auto'}             # light or dark, as the reader's system prefers


_code_re = re.compile(r'`([^`]+)`')
_emph_re = re.compile(r'(?<![\w*])\*(?=\w)([^*\n]*?\w)\*(?![\w*])')
_ok_before, _ok_after = set(' \t([{<"\'-/:'), set(' \t)]}>"\'-/:.,;!?')

def _md_line(line: str) -> str:
    """One docstring line written in nbdev's Markdown style, as reStructuredText that shows the same: `code` spans
    become literals (separated from letters such as `alpha`× by an escaped space), and |, * and trailing _ outside
    code are escaped so that docutils does not read them as substitutions, emphasis or references."""
    out, pos = [], 0
    def text(t):
        t = t.replace('\\', '\\\\').replace('|', '\\|').replace('`', '\\`')
        keep = {m.start() for m in _emph_re.finditer(t)} | {m.end() - 1 for m in _emph_re.finditer(t)}
        t = ''.join('\\*' if c == '*' and i not in keep else c for i, c in enumerate(t))
        return re.sub(r'(\w)_(?=\W|$)', r'\1\\_', t)
    for m in _code_re.finditer(line):
        before = line[pos:m.start()]
        out.append(text(before))
        lit = '``' + m[1] + '``'
        if before and before[-1] not in _ok_before: lit = '\\ ' + lit
        nxt = line[m.end():m.end() + 1]
        if nxt and nxt not in _ok_after: lit += '\\ '
        out.append(lit); pos = m.end()
    out.append(text(line[pos:]))
    return ''.join(out)

def _parameters(what: str, obj) -> list[str]:
    """The parameters of a function, method or class as reStructuredText fields (`:param x: ...` and `:type x: ...`,
    which Sphinx shows as one "Parameters" list): each with its annotation, its default and, where the source documents
    it nbdev's way (a comment after the parameter, `docments`), that comment. Empty for anything without a signature of
    its own (a class inheriting `object.__init__`, `(*args, **kwargs)` only)."""
    if what not in ('function', 'method', 'class') or not callable(obj): return []
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return []
    params = list(sig.parameters.values())
    if what == 'method' and params and params[0].name in ('self', 'cls'): params = params[1:]
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params): return []
    from sphinx.util.inspect import object_description
    try:
        from gmml_fast.core import param_notes      # the one reader of the docments comments (and `hp` help lines)
        notes = param_notes(obj)
    except Exception: notes = {}
    out = []
    for p in params:
        star = {p.VAR_POSITIONAL: '\\*', p.VAR_KEYWORD: '\\*\\*'}.get(p.kind, '')
        desc = [_md_line(notes[p.name])] if notes.get(p.name) else []
        if p.default is not p.empty:
            d = ' '.join(object_description(p.default).split())      # as in the signature: no memory addresses
            d = f'default ``{d if len(d) <= 60 else d[:57] + "..."}``'
            desc.append(f'({d})' if desc else d)
        out.append(f':param {star}{p.name}: ' + ' '.join(desc))
        if p.annotation is not p.empty:
            a = p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)
            out.append(f':type {star}{p.name}: {a}')
    return out

def _docstrings(app, what, name, obj, options, lines):
    doc = getattr(type(obj), '__doc__', None)
    if not isinstance(doc, str): doc = None   # e.g. a NamedTuple field's getter type keeps __doc__ per instance
    if what in ('data', 'attribute') and doc and '\n'.join(lines).strip() == inspect.cleandoc(doc).strip():
        lines.clear()          # a module constant (a str, a dict, a Path) has no docstring of its own: not its type's
    elif name.startswith(project + '.'):
        lines[:] = [_md_line(l) for l in lines]
        if not any(l.lstrip().startswith((':param', ':parameter')) for l in lines) and (fields := _parameters(what, obj)):
            lines += [''] * bool(lines) + fields + ['']

def setup(app):
    app.connect('autodoc-process-docstring', _docstrings)

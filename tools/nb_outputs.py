"""Shared rules for the notebooks' stored outputs, used by `tools/run_notebooks.py` (which writes them) and
`tests/test_notebook_outputs.py` (which checks them without executing anything).

* which code cells run: exactly the cells `nbdev_test` (without `--flags`) runs, decided with nbdev's own directive
  parser and `tst_flags`;
* the stamp: every cell that ran carries `metadata[STAMP_KEY] = {'src': src_hash(source)}`, so a cell edited
  after the last run is detectable (settings.ini lists STAMP_KEY in `allowed_cell_metadata_keys`, so `nbdev_clean`
  keeps it);
* which cells draw a figure, what a progress-bar output looks like, and which outputs are blank.
"""
from __future__ import annotations
import ast, hashlib, re
from dataclasses import dataclass
from pathlib import Path

STAMP_KEY = 'gmml_fast'          # cell metadata key: {'src': first 16 hex digits of the sha256 of the cell source}
ROOT = Path(__file__).resolve().parent.parent

def cell_source(cell) -> str:
    "The source of a notebook cell (a dict as stored in the .ipynb) as one string."
    src = cell.get('source', '')
    return src if isinstance(src, str) else ''.join(src)

def src_hash(source: str) -> str:
    "The stamp value for a cell whose source is `source`."
    return hashlib.sha256(source.encode('utf-8')).hexdigest()[:16]

def stamp_of(cell):
    "The stored stamp of `cell` (None when it has none)."
    st = cell.get('metadata', {}).get(STAMP_KEY)
    return st.get('src') if isinstance(st, dict) else None

@dataclass
class CodeCell:
    idx: int                # index of the cell in the notebook (all cell types counted)
    source: str             # the source as stored
    run_source: str         # what is executed: the source with nbdev's `#|` directives removed (as nbdev_test runs it)
    skip: str | None        # why nbdev_test does not run it (None: it runs)

def test_flags(root=ROOT) -> set[str]:
    "settings.ini's `tst_flags`: cells marked with one of these are skipped by `nbdev_test` without `--flags`."
    from nbdev.config import get_config
    return set(get_config(path=root).get('tst_flags', '').split())

def plan(nb_path, flags=None) -> tuple[str | None, list[CodeCell]]:
    """(reason the whole notebook is skipped or None, its code cells with what nbdev_test does with each).

    Mirrors `nbdev.test.test_nb`: the notebook is read through `NBProcessor(..., procs=FrontmatterProc)`; it is
    skipped when its frontmatter says `skip_exec` or it is not Python; a code cell is skipped when it calls
    `nbdev_export(`, has `#| eval: false`, or carries one of `tst_flags` (e.g. `#| slow`)."""
    from fastcore.basics import str2bool
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor, nb_lang
    nb_path = Path(nb_path)
    flags = test_flags(nb_path.parent) if flags is None else set(flags)
    import json
    raw = json.loads(nb_path.read_text(encoding='utf-8'))
    nb = NBProcessor(nb_path, procs=FrontmatterProc, process=True).nb
    fm = getattr(nb, 'frontmatter_', {}) or {}
    whole = ('frontmatter skip_exec' if str2bool(fm.get('skip_exec', False))
             else None if nb_lang(nb) == 'python' else f'language {nb_lang(nb)}')
    processed = {c.idx_: c for c in nb.cells if c.cell_type == 'code' and hasattr(c, 'idx_')}
    cells = []
    for i, c in enumerate(raw['cells']):
        if c['cell_type'] != 'code': continue
        p = processed[i]
        direc = getattr(p, 'directives_', {}) or {}
        if 'nbdev_export' + '(' in p.source: why = 'calls nbdev_export'
        elif direc.get('eval:', [''])[0].lower() == 'false': why = '#| eval: false'
        elif flags & direc.keys(): why = '#| ' + ' '.join(sorted(flags & direc.keys()))
        else: why = whole
        cells.append(CodeCell(i, cell_source(c), p.source, why))
    return whole, cells

# --- figures -----------------------------------------------------------------------------------------------------
# A cell "draws a figure" when, outside any def/class/lambda body, it calls one of these. Names are matched on the
# called function/method name, so `print(...)`, `plt.close(...)` or `plt.rcParams[...]` never count.
FIGURE_METHODS = {'show', 'show_batch', 'show_results', 'plot', 'imshow', 'matshow', 'hist', 'bar', 'barh', 'errorbar',
                  'lr_find', 'subplots', 'figure', 'subplot', 'subplot_mosaic'}
AXES_ONLY = {'scatter'}                       # also a tensor method: counts only as `plt.scatter` / `ax*.scatter`
FIGURE_PREFIXES = ('show_', 'plot_')          # show_img, show_corruption, plot_loss, plot_confusion_matrix, ...
NOT_FIGURES = {'show_doc', 'show_install', 'show_versions', 'show_config', 'show_styles', 'plot_model'}

def _call_name(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Name): return f.id
    if not isinstance(f, ast.Attribute): return None
    if f.attr in AXES_ONLY:
        recv = f.value.value if isinstance(f.value, ast.Subscript) else f.value
        return f.attr if isinstance(recv, ast.Name) and (recv.id == 'plt' or recv.id.startswith('ax')) else None
    return f.attr

def _is_figure_call(name: str) -> bool:
    return name not in NOT_FIGURES and (name in FIGURE_METHODS | AXES_ONLY or name.startswith(FIGURE_PREFIXES))

class _TopLevelCalls(ast.NodeVisitor):
    "Calls executed when the cell runs (not those inside function, class or lambda bodies)."
    def __init__(self): self.names = []
    def visit_FunctionDef(self, node):
        for d in node.decorator_list: self.visit(d)
    visit_AsyncFunctionDef = visit_FunctionDef
    def visit_ClassDef(self, node):
        for d in node.decorator_list: self.visit(d)
    def visit_Lambda(self, node): pass
    def visit_Call(self, node):
        n = _call_name(node)
        if n in ('run_line_magic', 'run_cell_magic') and _consts(node.args[:1]) in (['time'], ['timeit'], ['prun']):
            try: self.visit(ast.parse(_consts(node.args[-1:])[0]))      # %time / %%time run their code
            except (SyntaxError, IndexError, TypeError): pass
        elif n: self.names.append(n)
        self.generic_visit(node)

def _consts(args): return [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]

def figure_calls(run_source: str) -> list[str]:
    "The figure-drawing calls that run when a cell with this (directive-free) source is executed."
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        code = TransformerManager().transform_cell(run_source)   # %magics and !shell lines become Python
    except Exception: code = run_source
    try: tree = ast.parse(code)
    except SyntaxError: return []
    v = _TopLevelCalls(); v.visit(tree)
    return [n for n in v.names if _is_figure_call(n)]

# --- outputs -----------------------------------------------------------------------------------------------------
def _text(v) -> str: return v if isinstance(v, str) else ''.join(v)

def has_png(cell) -> bool:
    return any('image/png' in o.get('data', {}) for o in cell.get('outputs', []))

_progress_re = re.compile(r'<progress\b', re.I)

def progress_bars(out) -> int:
    "How many progress bars an output shows (HTML <progress> elements)."
    return len(_progress_re.findall(_text(out.get('data', {}).get('text/html', ''))))

_cr_update_re = re.compile(r'\r(?!\n)')

def cr_updates(out) -> int:
    "Carriage-return overwrites in a stream output (console progress bars print one per update)."
    return len(_cr_update_re.findall(_text(out.get('text', '')))) if out.get('output_type') == 'stream' else 0

def collapse_cr(text: str) -> str:
    "What a terminal shows for `text`: in every line, only what follows the last carriage return that has text after it."
    lines = []
    for line in text.split('\n'):
        parts = [p for p in line.split('\r') if p]
        lines.append(parts[-1] if parts else '')
    return '\n'.join(lines)

_visible_tags = re.compile(r'<(img|svg|table|progress|style|video|audio|iframe|canvas|input|script|math|hr)\b', re.I)
_tag_re = re.compile(r'<[^>]*>')

def is_blank(out) -> bool:
    """An output that shows nothing: only whitespace, or HTML with no text and nothing visible (judged on the MIME type
    a notebook viewer shows: anything non-text first, then HTML, then the other text types)."""
    t = out.get('output_type')
    if t == 'stream': return not _text(out.get('text', '')).strip()
    if t not in ('display_data', 'execute_result'): return False
    data = out.get('data', {})
    if any(not m.startswith('text/') for m in data): return False          # images, JSON, widgets: never blank
    if 'text/html' in data:
        h = _text(data['text/html'])
        return not (_visible_tags.search(h) or _tag_re.sub('', h).replace('&nbsp;', ' ').strip())
    return not any(_text(v).strip() for v in data.values())

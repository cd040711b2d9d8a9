"""Build the documentation site into _docs/: every notebook of nbs/ with its stored outputs, and an API reference.

    python docs/build.py [--out _docs] [--work _proc/docs] [-j 1] [-q]

Nothing is executed: the notebooks are shown with the outputs stored in them (`bash run.sh notebooks` writes those).
The Sphinx source folder (`<work>/src`; the work folder is rebuilt from scratch each time and git-ignored) is
assembled from
* copies of nbs/*.ipynb (nbs/ itself is never written): cells marked `#| hide` / `#| include: false` are left out,
  `#| echo: false` shows only the output, `#| output: false` only the code, directive-only cells are left out, and
  the landing page (index.ipynb) gets the site's table of contents as a last, hidden cell;
* the images that the notebooks' markdown links to (found next to the notebook or, for index.ipynb, which is also
  the README, in the repository root);
* HTML `<img>` tags turned into markdown images (Sphinx copies only those into the site), keeping their width;
* the source of `#| export` cells collapsed behind a "Show code cell source" toggle (myst-nb's `hide-input` tag) and
  followed by an API card (autodoc: signature, docstring, parameters) for each name of the module's `__all__` it defines;
* links of the landing page to `nbs/X.ipynb` (right on GitHub, where it is the README) pointed at the page `X`;
* the top-level pages `results` and `fidelity` (when their notebooks exist) right after the landing page;
* generated pages: `library` and `tutorials` (the notebooks in reading order, with their one-line summaries) and
  `api/` (one page per module with every name in its `__all__`, from the docstrings, and an index of them all).
The Sphinx configuration is docs/conf.py. Offline, and a few minutes at most on two cores.
"""
from __future__ import annotations
import argparse, ast, json, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS, NBS = ROOT/'docs', ROOT/'nbs'
LIB = 'gmml_fast'

TOP_PAGES = ('results', 'fidelity')      # notebooks that are pages of their own in the site's navigation
_dir_re = re.compile(r'^\s*#\|\s*(.*?)\s*$')
_html_img_re = re.compile(r'<img\s+(?=[^>]*\bsrc="(?P<src>[^"]+)")(?=(?:[^>]*\balt="(?P<alt>[^"]*)")?)'
                          r'(?=(?:[^>]*\bwidth="(?P<width>\d+(?:px|%)?)")?)[^>]*>', re.I)
_title_re = re.compile(r'^#\s+(.+?)\s*$', re.M)
_desc_re = re.compile(r'^>\s*(.+?)\s*$', re.M)
_img_re = re.compile(r'!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)|<img\b[^>]*\bsrc=["\']([^"\']+)["\']', re.I)

def _src(cell): return cell['source'] if isinstance(cell['source'], str) else ''.join(cell['source'])

def directives(source: str) -> tuple[set[str], str]:
    "The leading `#|` directives of a code cell (normalised: `include: false` -> 'include:false') and the code after them."
    lines, dirs = source.splitlines(), set()
    while lines and (m := _dir_re.match(lines[0])):
        dirs.add(re.sub(r'\s*:\s*', ':', m[1]).lower()); lines.pop(0)
    return dirs, '\n'.join(lines).strip()

def tags_for(source: str) -> list[str]:
    "myst-nb tags that give a code cell the visibility nbdev's directives ask for."
    dirs, code = directives(source)
    if not code or dirs & {'hide', 'include:false'}: return ['remove-cell']
    return (['remove-input'] if 'echo:false' in dirs else []) + (['remove-output'] if 'output:false' in dirs else [])

def md_image(m: re.Match) -> str:
    "An HTML `<img>` (matched by `_html_img_re`) as a markdown image, keeping its `width` (MyST's inline attributes)."
    w = m['width'] and (m['width'] + 'px' if m['width'].isdigit() else m['width'])
    return f"![{m['alt'] or ''}]({m['src']})" + (f'{{width={w}}}' if w else '')

def exported(source: str) -> bool:
    "Whether a code cell is exported to the module and hidden from the docs' reading flow (`#| export`, `#| exporti`; `#| exports` shows its source)."
    dirs, code = directives(source)
    return bool(code) and any(re.match(r'export(i)?(\s|$)', d) for d in dirs) and not dirs & {'hide', 'include:false'}

def defined_names(code: str) -> list[str]:
    "Top-level names a cell's code defines (functions, classes, assignments), in order; none when it does not parse."
    try: tree = ast.parse(code)
    except SyntaxError: return []
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                out += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
    return out

def api_cards(module: str, entries: list[tuple[str, str, bool]]) -> str:
    """A markdown cell's source with one API card (autodoc: signature, docstring and parameters, `:no-index:` since the
    API page is the entry that links resolve to) per (name, directive, long value) entry of `module`."""
    rst = []
    for n, directive, long in entries:
        opts = ['no-index'] + (['no-value'] if directive == 'autodata' and long else [])
        rst.append('.. container:: api-card\n\n'
                   f'   .. {directive}:: {LIB}.{module}.{n}\n' + ''.join(f'      :{o}:\n' for o in opts))
    return '```{eval-rst}\n' + '\n'.join(rst) + '```\n'

def title_and_summary(nb: dict, fallback: str) -> tuple[str, str]:
    md = next((_src(c) for c in nb['cells'] if c['cell_type'] == 'markdown'), '')
    t, d = _title_re.search(md), _desc_re.search(md)
    return (t[1] if t else fallback), (d[1] if d else '')

def sections(names: list[str], index_md: str) -> dict[str, list[str]]:
    """Library notebooks (`NN_*`) in number order; tutorials in the order of the landing page's tutorial table
    (then of their first mention, then by name); anything else after them."""
    lib = sorted(n for n in names if re.match(r'\d+_', n))
    tut = [n for n in names if n.startswith('tutorial_')]
    rows = [m[1] for m in re.finditer(r'^\|\s*`?(tutorial_\w+)`?\s*\|', index_md, re.M)]
    pos = lambda n: (rows.index(n) if n in rows else len(rows), index_md.find(n) % (len(index_md) + 1), n)
    top = [n for n in TOP_PAGES if n in names]
    other = sorted(n for n in names if n not in lib and n not in tut and n not in top and n != 'index')
    return {'top': top, 'library': lib, 'tutorials': sorted(tut, key=pos), 'other': other}

def module_all(py: Path) -> list[tuple[str, str, bool]]:
    """(name, autodoc directive, long value) for every name in the literal `__all__` of a module file (nbdev writes
    one), read without importing the module: `def` -> autofunction, `class` -> autoclass, anything else -> autodata."""
    src = py.read_text(encoding='utf-8')
    tree, kinds, names = ast.parse(src), {}, []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)): kinds[node.name] = ('autofunction', False)
        elif isinstance(node, ast.ClassDef): kinds[node.name] = ('autoclass', False)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            long = len(ast.get_source_segment(src, node.value) or '') > 100 if node.value else False
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        if n.id == '__all__': names = list(ast.literal_eval(node.value))
                        else: kinds.setdefault(n.id, ('autodata', long))
    return [(n, *kinds.get(n, ('autodata', False))) for n in names]

def modules() -> tuple[dict[str, list[str]], dict[str, str]]:
    "Every public module of the package (no leading underscore) with its `__all__`, in notebook order; and the notebook exporting each."
    exp = {}
    for nb in sorted(NBS.glob('*.ipynb')):
        for c in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            if c['cell_type'] == 'code' and (m := re.search(r'^#\|\s*default_exp\s+(\S+)', _src(c), re.M)): exp[m[1]] = nb.stem
    mods = sorted((p.stem for p in (ROOT/LIB).glob('*.py') if not p.stem.startswith('_')),
                  key=lambda m: (exp.get(m, '~'), m))
    return {m: module_all(ROOT/LIB/f'{m}.py') for m in mods}, exp

def _toctree(entries, hidden=True, maxdepth=1, caption=None):
    opts = [':hidden:'] * hidden + [f':maxdepth: {maxdepth}'] + ([f':caption: {caption}'] if caption else [])
    return '```{toctree}\n' + '\n'.join(opts) + '\n\n' + '\n'.join(entries) + '\n```\n'

def prepare(src: Path) -> dict:
    "Assemble the Sphinx source folder `src` (emptied first); returns what went in."
    if src.exists(): shutil.rmtree(src)
    (src/'api').mkdir(parents=True)
    nbs = {p.stem: json.loads(p.read_text(encoding='utf-8')) for p in sorted(NBS.glob('*.ipynb'))}
    if 'index' not in nbs: sys.exit('nbs/index.ipynb is missing: it is the landing page')
    index_md = '\n'.join(_src(c) for c in nbs['index']['cells'] if c['cell_type'] == 'markdown')
    secs = sections(list(nbs), index_md)
    mods, exported_by = modules()
    top = secs['top'] + ['library', 'tutorials'] + (['other'] if secs['other'] else []) + ['api/index']
    images = set()
    module_of = {nb: m for m, nb in exported_by.items()}
    for name, nb in nbs.items():
        names = {n: (n, d, long) for n, d, long in mods.get(module_of.get(name), [])}   # this notebook's module's __all__
        cells = []
        for c in nb['cells']:
            cells.append(c)
            if c['cell_type'] == 'code':
                if name == 'index':   # a Markdown output (the quick start's table) links the same way as a Markdown cell
                    for o in c.get('outputs', []):
                        md = o.get('data', {}).get('text/markdown')
                        if md is not None:
                            o['data']['text/markdown'] = re.sub(r'\]\(nbs/([\w.-]+\.ipynb)', r'](\1', ''.join(md))
                tags = tags_for(_src(c))
                if 'remove-cell' not in tags and exported(_src(c)):
                    # an exported cell: its source collapsed behind a toggle, then a card for each public name it defines
                    tags = tags + ['hide-input']
                    cards = [names.pop(n) for n in dict.fromkeys(defined_names(directives(_src(c))[1])) if n in names]
                    if cards:
                        cells.append({'cell_type': 'markdown', 'id': f"{c.get('id', len(cells))}-api"[:64], 'metadata': {},
                                      'source': api_cards(module_of[name], cards)})
                if tags: c.setdefault('metadata', {})['tags'] = sorted(set(c['metadata'].get('tags', [])) | set(tags))
            elif c['cell_type'] == 'markdown':
                if name == 'index': c['source'] = re.sub(r'\]\(nbs/([\w.-]+\.ipynb)', r'](\1', _src(c))
                # an HTML <img> (the README sizes its figure with one) becomes a markdown image, which Sphinx copies into the site
                c['source'] = _html_img_re.sub(md_image, _src(c))
                for m in _img_re.finditer(_src(c)):
                    ref = (m[1] or m[2]).split('#')[0]
                    if re.match(r'^[a-z][a-z0-9+.-]*:', ref, re.I) or ref.startswith('/'): continue   # URL, data:, absolute
                    for base in ((NBS, ROOT) if name == 'index' else (NBS,)):
                        if (base/ref).is_file():
                            (src/ref).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(base/ref, src/ref); images.add(ref)
                            break
        nb['cells'] = cells
        if name == 'index':
            nb['cells'].append({'cell_type': 'markdown', 'id': 'site-toc', 'metadata': {}, 'source': _toctree(top)})
        # Where each cell starts, counting the lines of the cells before it (myst-nb's `source_map`: warnings name
        # these lines). Without it myst-nb puts cell i at line 10,000·(i+1), and every `{eval-rst}` block (the API
        # cards) is parsed after as many blank lines: minutes of docutils work instead of a second.
        starts, line = [], 0
        for c in nb['cells']: starts.append(line); line += _src(c).count('\n') + 2
        nb.setdefault('metadata', {})['source_map'] = starts
        (src/f'{name}.ipynb').write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding='utf-8')

    def listing(names):
        out = []
        for n in names:
            title, summary = title_and_summary(nbs[n], n)
            out.append(f'- [{title}]({n}.ipynb)' + (f' — {summary}' if summary else ''))
        return '\n'.join(out) + '\n'
    (src/'library.md').write_text(
        '# Library\n\nEach of these notebooks is one module of `gmml_fast`: it explains the idea, defines the code '
        '(the cells marked `#| export` make up the module) and tests and shows it. They are numbered in the order the '
        'data flows.\n\n' + listing(secs['library']) + '\n' + _toctree(secs['library']), encoding='utf-8')
    (src/'tutorials.md').write_text(
        '# Tutorials\n\nEnd-to-end uses of the library, with the outputs of a quick run stored in each notebook '
        '(its heavy `#| slow` cells are shown without outputs).\n\n' + listing(secs['tutorials']) + '\n'
        + _toctree(secs['tutorials']), encoding='utf-8')
    if secs['other']:
        (src/'other.md').write_text('# More notebooks\n\n' + listing(secs['other']) + '\n' + _toctree(secs['other']),
                                    encoding='utf-8')
    api = ['# API reference\n', f'Every public name of `{LIB}` (each module\'s `__all__`), module by module, with the '
           'first line of its docstring; the module pages hold the full docstrings and signatures.\n',
           _toctree(mods)]
    for m, names in mods.items():
        nb = exported_by.get(m)
        api.append(f'## {{py:mod}}`{LIB}.{m}`\n' + (f'\nFrom the notebook [{title_and_summary(nbs[nb], nb)[0]}](../{nb}.ipynb).\n' if nb in nbs else ''))
        if names:
            api.append('```{eval-rst}\n.. autosummary::\n   :nosignatures:\n\n'
                       + '\n'.join(f'   ~{LIB}.{m}.{n}' for n, _, _ in names) + '\n```\n')
        head = f'{LIB}.{m}'
        see = f'\nSource notebook: :doc:`../{nb}`\n' if nb in nbs else ''
        page = [f'{head}\n{"=" * len(head)}\n{see}\n.. automodule:: {head}\n']
        for n, directive, long in names:     # one entry per name of __all__, in its order
            opts = {'autoclass': ['members', 'undoc-members', 'show-inheritance'], 'autodata': ['no-value'] if long else []}
            page.append(f'.. {directive}:: {head}.{n}\n' + ''.join(f'   :{o}:\n' for o in opts.get(directive, [])))
        (src/'api'/f'{m}.rst').write_text('\n'.join(page), encoding='utf-8')
    (src/'api'/'index.md').write_text('\n'.join(api), encoding='utf-8')
    return {'notebooks': list(nbs), 'sections': secs, 'modules': list(mods), 'images': sorted(images)}

def build(work: Path, out: Path, jobs: str = '1', quiet: bool = False) -> int:
    "Run Sphinx on `work`/src. The HTML is built in `work`/html (myst-nb puts its output files next to it) and moved to `out`."
    html = work/'html'
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-c', str(DOCS), '-d', str(work/'doctrees'), '-j', jobs,
           '--keep-going', str(work/'src'), str(html)] + (['-q'] if quiet else [])
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    if rc == 0 and (html/'index.html').exists():
        if out.exists(): shutil.rmtree(out)
        shutil.move(str(html), str(out))
    return rc

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default=str(ROOT/'_docs'), help='where the site goes (default: _docs)')
    ap.add_argument('--work', default=str(ROOT/'_proc'/'docs'), help='scratch folder, emptied first (default: _proc/docs)')
    ap.add_argument('-j', '--jobs', default='1', help="Sphinx's parallel jobs (default 1)")
    ap.add_argument('-q', '--quiet', action='store_true', help='only warnings and errors')
    args = ap.parse_args(argv)
    t0 = time.time()
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    if work.exists(): shutil.rmtree(work)
    info = prepare(work/'src')
    rc = build(work, out, args.jobs, args.quiet)
    ok = rc == 0 and (out/'index.html').exists()
    print(f"[docs] {len(info['notebooks'])} notebooks, {len(info['modules'])} API modules -> {out} "
          f"({'ok' if ok else 'FAILED'}, {time.time() - t0:.0f} s)", file=sys.stderr)
    return 0 if ok else 1

if __name__ == '__main__': sys.exit(main())

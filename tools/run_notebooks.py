"""Execute notebooks in place and store their outputs, so that a reader (GitHub, the docs site) sees them.

    python tools/run_notebooks.py [NB ...] [--n_workers 2] [--dpi 72] [--seed 0]

NB: notebook paths or names (`10_patches`, `nbs/10_patches.ipynb`); default: every nbs/*.ipynb.

Each notebook runs in its own fresh process (`--n_workers` at a time) from the nbs/ folder, in an IPython shell
(execnb's CaptureShell) with matplotlib's inline backend (PNG figures at `--dpi`), one torch thread and a fixed seed.
It runs the cells `nbdev_test` runs without `--flags`: cells marked `#| slow` (settings.ini's tst_flags) or
`#| eval: false` are not executed, and keep no outputs.

Outputs are stored as a notebook front end would show them once the cell is done: a display updated in place
(fastprogress/fastai progress bars, whose HTML versions are used) is stored once, in its final state, so a training
run leaves its results table and no progress churn; carriage-return overwrites in printed text are collapsed;
outputs that show nothing are dropped, and a cell ending in `;` stores no value, as Jupyter shows none; opaque PNG figures are stored with a 256-colour palette when that is
smaller (photos: about a third of the size; `--png_colors 0` keeps them as rendered). Every executed cell is stamped with the hash of its source
(`metadata['gmml_fast']['src']`, see tools/nb_outputs.py), then the notebook is cleaned exactly as `nbdev_clean` does.

A cell that raises: the notebook, cell index and traceback are reported, that notebook is left untouched, and the
exit status is 1. For each notebook the wall time and the size of the written file are printed.
"""
from __future__ import annotations
import argparse, base64, importlib.util, io, json, os, sys, time, traceback
from multiprocessing import get_context
from pathlib import Path

# run as a script, this folder is first on sys.path (the spawned workers start with the same sys.path)
from nb_outputs import ROOT, STAMP_KEY, plan, src_hash, collapse_cr, is_blank, _text

NBS = ROOT/'nbs'

# --- capturing what a cell shows, in order --------------------------------------------------------------------------
def _mime(mime, v):
    "A MIME bundle value as nbformat stores it."
    if isinstance(v, bytes): v = base64.b64encode(v).decode() if mime.startswith('image/') else v.decode()
    if mime.startswith('text/') or (mime.startswith('image/') and mime != 'image/svg+xml' and isinstance(v, str)):
        return v.splitlines(True) if mime.startswith('text/') else v
    return v

class _Recorder:
    "The outputs of one cell in arrival order; displays with an id can be updated later (from any cell)."
    def __init__(self, displays):
        self.outs, self.displays, self.clear_pending = [], displays, False

    def _add(self, out):
        if self.clear_pending: self.outs.clear(); self.clear_pending = False
        self.outs.append(out)

    def stream(self, name, text):
        if not text: return
        if self.clear_pending: self.outs.clear(); self.clear_pending = False
        last = self.outs[-1] if self.outs else None
        if last is not None and last['output_type'] == 'stream' and last['name'] == name: last['text'] += text
        else: self.outs.append({'output_type': 'stream', 'name': name, 'text': text})

    def display(self, data, metadata, transient, update):
        did = (transient or {}).get('display_id')
        data = {k: _mime(k, v) for k, v in data.items()}
        if update:                      # like a front end: replace every display with this id, wherever it is
            for out in self.displays.get(did, []): out['data'], out['metadata'] = data, metadata or {}
            return
        out = {'output_type': 'display_data', 'data': data, 'metadata': metadata or {}}
        self._add(out)
        if did: self.displays.setdefault(did, []).append(out)

    def clear(self, wait=False):
        if wait: self.clear_pending = True
        else: self.outs.clear()

class _Stream(io.TextIOBase):
    def __init__(self, rec, name): self.rec, self.name = rec, name
    def writable(self): return True
    def write(self, s):
        self.rec.stream(self.name, s); return len(s)
    @property
    def encoding(self): return 'utf-8'

def _publisher(shell, rec):
    from IPython.core.displaypub import DisplayPublisher
    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            rec.display(data, metadata, transient, update)
        def clear_output(self, wait=False): rec.clear(wait)
    return Publisher(shell=shell)

class CellError(Exception): pass

def _run_cell(shell, source, rec):
    "Run `source` in `shell`, recording its streams and displays in `rec`; its value is returned as execute_result."
    from IPython.core.interactiveshell import InteractiveShell
    saved = sys.stdout, sys.stderr, shell.display_pub
    sys.stdout, sys.stderr, shell.display_pub = _Stream(rec, 'stdout'), _Stream(rec, 'stderr'), _publisher(shell, rec)
    try: res = InteractiveShell.run_cell(shell, source, store_history=False)
    finally: sys.stdout, sys.stderr, shell.display_pub = saved
    err = res.error_before_exec or res.error_in_exec
    if err is not None:
        tb = traceback.TracebackException.from_exception(err)
        tb.stack = traceback.StackSummary.from_list(        # the cell's frames, not IPython's machinery
            [f for f in tb.stack if not f.filename.endswith(('interactiveshell.py', 'async_helpers.py'))])
        raise CellError(''.join(tb.format()))
    from IPython.core.displayhook import DisplayHook
    # a trailing ';' hides the cell's value in Jupyter (IPython's own rule), so it is not stored either
    if res.result is not None and not DisplayHook.semicolon_at_end_of_expression(source):
        data, md = shell.display_formatter.format(res.result)
        rec.outs.append({'output_type': 'execute_result', 'execution_count': None,
                         'data': {k: _mime(k, v) for k, v in data.items()}, 'metadata': md or {}})
    return rec.outs

# the code run before the notebook (never stored): figures, threads, seed, notebook-style progress bars
_PRELUDE = """
import warnings   # fastai 2.8 scripts a layer with torch.jit at import; torch 2.14 warns about it on every import
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
import matplotlib, random
matplotlib.rcParams['figure.dpi'] = {dpi}
import numpy as _np, torch as _torch
_torch.set_num_threads(1)
random.seed({seed}); _np.random.seed({seed}); _torch.manual_seed({seed})
import fastprogress as _fp, fastprogress.fastprogress as _fpp
_fp.master_bar = _fpp.master_bar = _fpp.NBMasterBar
_fp.progress_bar = _fpp.progress_bar = _fpp.NBProgressBar
del _np, _torch, _fp, _fpp
"""

def shrink_png(b64: str, colors: int) -> str:
    """A PNG (base64) as a palette PNG of at most `colors` colours, when that is smaller and the image is opaque
    (matplotlib figures of photos: about a third of the size, no visible difference); else unchanged."""
    from PIL import Image
    raw = base64.b64decode(b64)
    im = Image.open(io.BytesIO(raw))
    if im.mode == 'RGBA' and im.getchannel('A').getextrema() != (255, 255): return b64
    if im.mode not in ('RGB', 'RGBA'): return b64
    buf = io.BytesIO()
    im.convert('RGB').quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        buf, 'PNG', optimize=True)
    return base64.b64encode(buf.getvalue()).decode() if buf.tell() < len(raw) else b64

def _clean(nb):
    "Clean `nb` in memory exactly as `nbdev_clean` does (nbdev's own function, settings.ini of the current folder)."
    try: from nbdev.clean import _nbdev_clean
    except ImportError:                         # the same, spelled out, should nbdev rename its helper
        from nbdev.clean import clean_nb
        from nbdev.config import get_config
        cfg = get_config()
        keys = lambda k: (cfg.get(k) or '').split()
        return clean_nb(nb, cfg.clear_all, keys('allowed_metadata_keys'), keys('allowed_cell_metadata_keys'), cfg.clean_ids)
    _nbdev_clean(nb)

def execute(nb_path, dpi=72, seed=0, png_colors=256, timings: dict | None = None) -> dict:
    "Run one notebook (in this process) and return it with its outputs, stamped and cleaned; `timings` (if given) gets each cell's seconds by index. Raises CellError."
    nb_path = Path(nb_path).resolve()
    _, cells = plan(nb_path)          # cells of a notebook nbdev_test skips as a whole carry that reason
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    os.chdir(nb_path.parent)           # the notebooks import gmml_fast and benchmarks as installed: this checkout (see main)
    from execnb.shell import CaptureShell
    shell = CaptureShell(mpl_format='png')
    displays = {}
    _run_cell(shell, _PRELUDE.format(dpi=dpi, seed=seed), _Recorder(displays))
    for c in cells:
        cell = nb['cells'][c.idx]
        cell['outputs'] = []
        cell.setdefault('metadata', {}).pop(STAMP_KEY, None)
        if c.skip: continue
        rec = _Recorder(displays)
        t_cell = time.time()
        try: cell['outputs'] = _run_cell(shell, c.run_source, rec)
        except CellError as e:
            raise CellError(f'{nb_path.name}: cell {c.idx} failed\n--- cell {c.idx} ---\n{c.source}\n---\n{e}') from None
        cell['metadata'][STAMP_KEY] = {'src': src_hash(c.source)}
        if timings is not None: timings[c.idx] = time.time() - t_cell
    import matplotlib.pyplot as plt
    plt.close('all')
    for c in cells:
        cell = nb['cells'][c.idx]
        for out in cell['outputs']:
            if out['output_type'] == 'stream':
                out['text'] = collapse_cr(out['text']).splitlines(True)
            data = out.get('data', {})
            if 'text/html' in data and _text(data.get('text/markdown', '')).startswith('```html'):
                del data['text/markdown']       # fasthtml objects (fastprogress) repeat their HTML as a code block
            png = data.get('image/png')
            if png and png_colors: data['image/png'] = shrink_png(png, png_colors)
        cell['outputs'] = [o for o in cell['outputs'] if not is_blank(o)]
    _clean(nb)
    for c in cells:          # the stamp is of the source as written (cleaning may only touch outputs and metadata)
        cell = nb['cells'][c.idx]
        if STAMP_KEY in cell['metadata']: assert cell['metadata'][STAMP_KEY]['src'] == src_hash(c.source)
    return nb

def _worker(job):
    "Run one notebook in a fresh process and write it: (path, ok, message, wall time)."
    from execnb.nbio import write_nb
    nb_path, dpi, seed, png_colors = job
    t0, timings = time.time(), {}
    try: nb = execute(nb_path, dpi, seed, png_colors, timings)
    except CellError as e: return nb_path, False, f'FAILED {e}', time.time() - t0
    except Exception: return nb_path, False, f'FAILED {Path(nb_path).name}\n{traceback.format_exc()}', time.time() - t0
    write_nb(nb, nb_path)
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])[:3]      # where a contributor would look first
    return nb_path, True, 'slowest cells: ' + ', '.join(f'#{i} {t:.1f} s' for i, t in slowest), time.time() - t0

def resolve(names) -> list[Path]:
    if not names: return sorted(NBS.glob('*.ipynb'))
    out = []
    for n in names:
        cands = [Path(n), NBS/n, NBS/f'{n}.ipynb']
        p = next((c for c in cands if c.is_file()), None)
        if p is None: sys.exit(f'no notebook {n!r} (looked for {", ".join(map(str, cands))})')
        out.append(p.resolve())
    return out

def check_installed(packages=('gmml_fast', 'benchmarks')):
    "The notebooks import the installed packages: stop with one line unless they are this checkout's (`pip install -e .` here)."
    for name in packages:
        spec = importlib.util.find_spec(name)
        where = Path(spec.origin).resolve().parent if spec and spec.origin else None
        if where != ROOT/name:
            sys.exit(f"the notebooks would import {name} from {where or 'nowhere'}, not {ROOT/name}: install this checkout "
                     f"(`pip install -e .` in {ROOT}, or `bash run.sh notebooks`)")

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='*', help='notebooks to run (default: every nbs/*.ipynb)')
    ap.add_argument('--n_workers', type=int, default=2, help='notebooks run at the same time, one process each')
    ap.add_argument('--dpi', type=int, default=72, help='resolution of the stored PNG figures')
    ap.add_argument('--seed', type=int, default=0, help='seed of random, numpy and torch before the first cell')
    ap.add_argument('--png_colors', type=int, default=256,
                    help='store opaque PNG figures as palette PNGs of this many colours when smaller (0: as rendered)')
    args = ap.parse_args(argv)
    nbs = resolve(args.notebooks)
    check_installed()
    # inherited by the worker processes (spawned, so these hold from their first import on)
    os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONHASHSEED=str(args.seed),
                      MPLBACKEND='module://matplotlib_inline.backend_inline')
    t0, failed = time.time(), []
    jobs = [(str(p), args.dpi, args.seed, args.png_colors) for p in nbs]
    # spawn + one task per process: every notebook starts from a fresh interpreter, as in a new kernel
    with get_context('spawn').Pool(max(1, min(args.n_workers, len(jobs))), maxtasksperchild=1) as pool:
        for path, ok, msg, wall in pool.imap_unordered(_worker, jobs):
            p = Path(path)
            if ok: print(f'{p.name:32s} {wall:7.1f} s  {p.stat().st_size/1024:8.1f} KiB  ({msg})', flush=True)
            else:
                failed.append(p.name)
                print(f'{p.name:32s} {wall:7.1f} s  not written', flush=True)
                print(msg, file=sys.stderr, flush=True)
    total = sum(p.stat().st_size for p in sorted(NBS.glob('*.ipynb')))
    print(f'{len(nbs) - len(failed)}/{len(nbs)} notebooks written in {time.time() - t0:.0f} s; '
          f'nbs/*.ipynb now {total/2**20:.2f} MiB in all')
    if failed:
        print(f'failed (left unchanged): {" ".join(failed)}', file=sys.stderr)
        return 1
    return 0

if __name__ == '__main__': sys.exit(main())

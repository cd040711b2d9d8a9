"""The notebooks' stored outputs are current, complete and small (read only: nothing here executes a notebook).

Outputs are written by `bash run.sh notebooks [NB ...]` (tools/run_notebooks.py), which stamps every executed cell
with the hash of its source; the rules shared with that tool are in tools/nb_outputs.py.
"""
import importlib.util, json, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def _load_tool(name: str):
    "tools/NAME.py as a module, from its file (tools/ is a folder of scripts, not a package); registered before it runs, as its dataclasses need."
    spec = importlib.util.spec_from_file_location(name, ROOT/'tools'/f'{name}.py')
    mod = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

O = _load_tool('nb_outputs')

NBS = sorted((ROOT/'nbs').glob('*.ipynb'))
MAX_TOTAL_BYTES = 10_000_000          # all nbs/*.ipynb together
MAX_PROGRESS_OUTPUTS_PER_CELL = 3     # final states of separate progress bars; updates of one bar are never stored

def _load(p): return json.loads(p.read_text(encoding='utf-8'))
def _rerun(p): return f"run `bash run.sh notebooks {p.stem}`"

def test_there_are_notebooks():
    assert NBS, f'no notebooks in {ROOT/"nbs"}'

@pytest.fixture(scope='module')
def plans():
    return {p: O.plan(p)[1] for p in NBS}

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_outputs_are_current(nb, plans):
    "Every cell nbdev_test runs was run with its current source (stamp == hash); cells it skips hold no outputs."
    cells, found = _load(nb)['cells'], {}
    add = lambda what, i: found.setdefault(what, []).append(str(i))
    for c in plans[nb]:
        cell = cells[c.idx]
        if c.skip:
            if cell.get('outputs') or O.stamp_of(cell): add(f'not executed ({c.skip}) but holding outputs or a stamp', c.idx)
            continue
        st = O.stamp_of(cell)
        if st is None: add('never run by the notebook runner (no stamp)', c.idx)
        elif st != O.src_hash(c.source): add('edited after their outputs were stored', c.idx)
        if any(o.get('output_type') == 'error' for o in cell.get('outputs', [])): add('storing an error', c.idx)
    assert not found, (f"{nb.relative_to(ROOT)}: " + '; '.join(f"{what}: cell{'s' * (len(ix) > 1)} {', '.join(ix)}" for what, ix in found.items())
                       + f" -- {_rerun(nb)}")

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_figures_are_stored(nb, plans):
    "Every executed cell that draws a figure (show_*, plot_*, .show(, plt.subplots, imshow, ...) stores a PNG."
    cells, missing = _load(nb)['cells'], []
    for c in plans[nb]:
        if c.skip: continue
        calls = O.figure_calls(c.run_source)
        if calls and not O.has_png(cells[c.idx]): missing.append(f"cell {c.idx} ({', '.join(sorted(set(calls)))})")
    assert not missing, (f"{nb.relative_to(ROOT)}: no image/png output in cells that draw a figure: "
                         + '; '.join(missing) + f" -- {_rerun(nb)}")

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_no_progress_churn(nb):
    "A progress bar is stored once, in its final state: no output holds several bars' updates or \\r overwrites."
    problems = []
    for i, cell in enumerate(_load(nb)['cells']):
        outs = cell.get('outputs', [])
        bars = [O.progress_bars(o) for o in outs]
        if any(b > 1 for b in bars): problems.append(f'cell {i}: an output shows {max(bars)} progress bars (a live state)')
        if sum(b > 0 for b in bars) > MAX_PROGRESS_OUTPUTS_PER_CELL:
            problems.append(f'cell {i}: {sum(b > 0 for b in bars)} progress-bar outputs')
        if (n := sum(O.cr_updates(o) for o in outs)): problems.append(f'cell {i}: {n} carriage-return updates in printed text')
        if (n := sum(O.is_blank(o) for o in outs)): problems.append(f'cell {i}: {n} outputs that show nothing')
    assert not problems, f"{nb.relative_to(ROOT)}: " + '; '.join(problems) + f" -- {_rerun(nb)}"

def test_notebooks_are_small():
    sizes = {p.name: p.stat().st_size for p in NBS}
    total = sum(sizes.values())
    top = ', '.join(f'{n} {s/1e6:.2f} MB' for n, s in sorted(sizes.items(), key=lambda kv: -kv[1])[:5])
    assert total <= MAX_TOTAL_BYTES, f'nbs/*.ipynb hold {total/1e6:.2f} MB > {MAX_TOTAL_BYTES/1e6:.0f} MB (largest: {top})'

def test_skip_rules_are_nbdev_tests(monkeypatch, plans):
    "tools/nb_outputs.plan runs exactly the cells `nbdev_test` runs: checked against nbdev's own test_nb, dry."
    import nbdev.test as nt
    ran = {}
    class DryShell:                 # stands in for execnb's CaptureShell inside nbdev.test.test_nb: records, runs nothing
        def __init__(self, *args, **kwargs): pass
        def run_all(self, nb, exc_stop=False, preproc=None, **kwargs):
            ran[Path(nb.path_).name] = [c.idx_ for c in nb.cells if c.cell_type == 'code' and not preproc(c)]
    monkeypatch.setattr(nt, 'CaptureShell', DryShell)
    monkeypatch.setenv('IN_TEST', '1')                      # test_nb sets it; monkeypatch restores the environment
    flags = O.test_flags()
    for nb in NBS:
        ok, _ = nt.test_nb(nb, skip_flags=flags)
        assert ok, nb.name
        assert ran.get(nb.name, []) == [c.idx for c in plans[nb] if not c.skip], nb.name

def test_figure_rule():
    "The figure rule counts drawing calls that run, not definitions, prints or closing a figure."
    assert O.figure_calls("fig, ax = plt.subplots()\nax.hist([1, 2])")
    assert O.figure_calls("learn.gmml.show(n=3);") == ['show']
    assert O.figure_calls("for a in axs: show_img(x, ax=a)") == ['show_img']
    assert O.figure_calls("%time learn.recorder.plot_loss()") == ['plot_loss']
    assert O.figure_calls("plt.scatter(x, y)") == ['scatter'] and not O.figure_calls("t.scatter(0, idx, src)")
    assert not O.figure_calls("def show_x(img):\n    plt.imshow(img)\n    plt.show()")
    assert not O.figure_calls("print('plot_ this .show(')\nplt.close(fig)\nx = plt.rcParams['figure.dpi']")
    assert not O.figure_calls("class A:\n    def show(self): plt.plot([1])\nf = lambda: plt.plot([1])")

def test_output_rules():
    assert O.is_blank({'output_type': 'stream', 'name': 'stdout', 'text': [' \n', '\n']})
    assert O.is_blank({'output_type': 'display_data', 'data': {'text/html': ['<div> </div>'], 'text/plain': ['<Div>']}})
    assert not O.is_blank({'output_type': 'display_data', 'data': {'text/html': ['<table></table>']}})
    assert not O.is_blank({'output_type': 'display_data', 'data': {'image/png': 'iVBO'}})
    assert O.collapse_cr('\r10%\r50%\r100%\ndone\n') == '100%\ndone\n'
    assert O.cr_updates({'output_type': 'stream', 'text': ['a\rb\r\n']}) == 1
    assert O.progress_bars({'data': {'text/html': ['<div><progress value="3" max="3"></progress> 100%</div>']}}) == 1

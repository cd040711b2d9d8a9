"""The library's public API is documented as fastai's is: every parameter of every public function, class and public
method carries a docments comment (or, for a dataclass field declared with `hp`, its help line), and no line of the
library passes 120 columns (nbdev's own `__all__` block and one-line module docstring aside)."""
import ast, dataclasses, importlib, inspect, pkgutil
from pathlib import Path

import pytest

import gmml_fast
from gmml_fast.core import param_notes

MODULES = sorted(m.name for m in pkgutil.iter_modules(gmml_fast.__path__) if not m.name.startswith('_'))


def _public_callables(mod):
    "(name, object whose signature a reader sees) for the names in `__all__` defined in `mod`, and their public methods."
    for n in getattr(mod, '__all__', []):
        o = getattr(mod, n)
        if getattr(o, '__module__', None) != mod.__name__: continue
        if inspect.isfunction(o): yield n, o
        elif inspect.isclass(o):
            if '__init__' in o.__dict__ or dataclasses.is_dataclass(o): yield n, o
            for k, v in o.__dict__.items():
                if not k.startswith('_') and inspect.isfunction(v): yield f'{n}.{k}', v


def _undocumented(obj) -> list[str]:
    sig = inspect.signature(obj)
    params = [p for p in sig.parameters.values() if p.name not in ('self', 'cls') and p.kind != p.VAR_POSITIONAL]
    notes = param_notes(obj)
    return [p.name for p in params if not notes.get(p.name)]


@pytest.mark.parametrize('module', MODULES)
def test_every_public_parameter_is_documented(module):
    mod = importlib.import_module(f'gmml_fast.{module}')
    missing = {name: m for name, o in _public_callables(mod) if (m := _undocumented(o))}
    assert not missing, f"parameters without a docments comment in gmml_fast.{module}: {missing}"


def test_the_check_sees_a_missing_comment():
    def documented(a: int,    # the first number
                   **kwargs):  # passed on
        pass
    def bare(a: int, b=2, **kwargs): pass
    assert _undocumented(documented) == []
    assert _undocumented(bare) == ['a', 'b', 'kwargs']


def _nbdev_lines(src: str) -> set[int]:
    "Line numbers (1-based) nbdev writes itself: the module docstring's first line and the `__all__` assignment."
    tree, out = ast.parse(src), {1}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '__all__' for t in node.targets):
            out |= set(range(node.lineno, node.end_lineno + 1))
    return out


@pytest.mark.parametrize('module', MODULES)
def test_library_lines_fit_120_columns(module):
    src = (Path(gmml_fast.__file__).parent/f'{module}.py').read_text(encoding='utf-8')
    skip = _nbdev_lines(src)
    long = [i for i, line in enumerate(src.splitlines(), 1) if len(line) > 120 and i not in skip]
    assert not long, f"gmml_fast/{module}.py has lines over 120 columns at {long} (edit its notebook)"


@pytest.mark.parametrize('module', MODULES)
def test_a_module_holds_at_most_400_lines(module):
    "One subject per module: a module that grows past 400 lines is split (its notebook too)."
    n = len((Path(gmml_fast.__file__).parent/f'{module}.py').read_text(encoding='utf-8').splitlines())
    assert n <= 400, f"gmml_fast/{module}.py has {n} lines"


def test_every_library_notebook_shows_the_cards_of_its_exports():
    "Each library notebook stores the API cards (`core.api_cards`) of every function and class its module exports."
    import json, re
    missing = {}
    for nb in sorted((Path(__file__).resolve().parent.parent/'nbs').glob('[0-9][0-9]_*.ipynb')):
        cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
        text = lambda c: ''.join(c['source'])
        mod = next(m[1] for c in cells if (m := re.search(r'#\|\s*default_exp\s+(\S+)', text(c))))
        card = next((c for c in cells if f"Markdown(api_cards('gmml_fast.{mod}'))" in text(c)), None)
        shown = ''.join(''.join(o.get('data', {}).get('text/markdown', '')) for o in (card or {}).get('outputs', []))
        m = importlib.import_module(f'gmml_fast.{mod}')
        names = [n for n in m.__all__ if callable(getattr(m, n)) and getattr(getattr(m, n), '__module__', None) == m.__name__]
        if lost := [n for n in names if f'### {n}\n' not in shown]: missing[nb.name] = lost
    assert not missing, f"notebooks without the cards of these exports (rerun them): {missing}"

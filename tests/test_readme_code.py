"The README's Python examples run as written (in a scratch folder), and what they print is what the README shows."
import contextlib, io, os, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_python_blocks_run(tmp_path, monkeypatch):
    readme = (ROOT/'README.md').read_text()
    blocks = re.findall(r"```python\n(.*?)```\n(?:\n((?:    [^\n]*\n)+))?", readme, re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    ns = {}
    for code, shown in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out): exec(compile(code, 'README.md', 'exec'), ns)
        if shown:                                   # an indented block after the code is its printed output
            want = '\n'.join(l[4:] for l in shown.rstrip('\n').splitlines())
            assert out.getvalue().strip().endswith(want.strip()), (out.getvalue(), want)
    learn = ns['learn']
    assert learn.recipe.method == 'gmml' and len(learn.recorder.values) == 1       # the recipe's learner, fitted one epoch

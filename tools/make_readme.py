"""Render nbs/index.ipynb to README.md (what `nbdev_readme` does, without needing Quarto).

Markdown cells are copied; code cells not marked `#| hide` become ```python blocks followed by their printed output
(stdout and the cell's value; warnings and rich displays are left out).
Usage: python tools/make_readme.py [--check]   (--check exits 1 if README.md is out of date)
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _text(o) -> str:
    "What the README shows of a stored output: printed text (stdout) and a cell's value; not warnings (stderr) nor rich displays (HTML tables, figures)."
    if o.get('output_type') == 'stream': return ''.join(o.get('text', '')) if o.get('name') == 'stdout' else ''
    if o.get('output_type') == 'execute_result': return ''.join(o.get('data', {}).get('text/plain', ''))
    return ''

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = ''.join(cell['source']).strip('\n')
        if cell['cell_type'] == 'markdown':
            parts.append(src)
        elif cell['cell_type'] == 'code':
            lines = src.splitlines()
            if any(re.match(r'^#\|\s*(hide|include:\s*false)', l) for l in lines): continue
            code = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
            if code: parts.append(f'```python\n{code}\n```')
            out = ''.join(_text(o) for o in cell.get('outputs', []))
            if out.strip(): parts.append('    ' + out.rstrip('\n').replace('\n', '\n    '))
    body = '\n\n'.join(parts)
    return body + '\n'

if __name__ == '__main__':
    text = render()
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is out of date: run `python tools/make_readme.py`')
    else: readme.write_text(text, encoding='utf-8'); print(f'wrote {readme}')

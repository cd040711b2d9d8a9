"""Render nbs/index.ipynb to README.md (what `nbdev_readme` does, without needing Quarto).

Markdown cells are copied; code cells not marked `#| hide` become ```python blocks followed by their printed output
(stdout and the cell's value; warnings and rich displays are left out). A cell marked `#| echo: false` shows only its
output, and an output that carries markdown (`IPython.display.Markdown`: the results tables, rendered from the committed
records by benchmarks/report.py) is copied as markdown.
Usage: python tools/make_readme.py [--check]   (--check exits 1 if README.md is out of date)
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _text(o) -> str:
    "What the README shows of a stored output as printed text: stdout and a cell's value; not warnings (stderr) nor rich displays (HTML tables, figures)."
    if o.get('output_type') == 'stream': return ''.join(o.get('text', '')) if o.get('name') == 'stdout' else ''
    if o.get('output_type') == 'execute_result' and 'text/markdown' not in o.get('data', {}):
        return ''.join(o.get('data', {}).get('text/plain', ''))
    return ''

def _markdown(o) -> str:
    "The markdown a stored output carries (an `IPython.display.Markdown` value or display), else ''."
    return ''.join(o.get('data', {}).get('text/markdown', '')) if o.get('output_type') in ('execute_result', 'display_data') else ''

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
            echo = not any(re.match(r'^#\|\s*echo:\s*false', l) for l in lines)
            if code and echo: parts.append(f'```python\n{code}\n```')
            out = ''.join(_text(o) for o in cell.get('outputs', []))
            if out.strip(): parts.append('    ' + out.rstrip('\n').replace('\n', '\n    '))
            parts += [m.strip('\n') for m in map(_markdown, cell.get('outputs', [])) if m.strip()]
    body = '\n\n'.join(parts)
    return body + '\n'

if __name__ == '__main__':
    text = render()
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is out of date: run `python tools/make_readme.py`')
    else: readme.write_text(text, encoding='utf-8'); print(f'wrote {readme}')

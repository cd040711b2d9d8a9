"""Render nbs/index.ipynb to README.md (what `nbdev_readme` does, without needing Quarto).

Markdown cells are copied; code cells not marked `#| hide` become ```python blocks followed by their text output.
Usage: python tools/make_readme.py [--check]   (--check exits 1 if README.md is out of date)
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
            out = ''.join(''.join(o.get('text', '')) if o.get('output_type') == 'stream'
                          else ''.join(o.get('data', {}).get('text/plain', '')) for o in cell.get('outputs', []))
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

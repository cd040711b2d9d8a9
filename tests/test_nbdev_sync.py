"The library, the notebooks and the README are in sync (checked on a copy; the working tree is never modified)."
import shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def _copy(tmp_path):
    dst = tmp_path/'repo'
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns('.git', '.venv', '__pycache__', '*.egg-info', 'outputs', '.hypothesis'))
    return dst

def _files(d): return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file() and '__pycache__' not in p.parts}

def _nbdev(cmd, cwd):
    exe = Path(sys.executable).parent/cmd
    return subprocess.run([str(exe)], cwd=cwd, capture_output=True, text=True, timeout=300)

def test_nbdev_export_leaves_no_diff(tmp_path):
    repo = _copy(tmp_path)
    before = _files(repo/'gmml_fast')
    r = _nbdev('nbdev_export', repo); assert r.returncode == 0, r.stderr
    after = _files(repo/'gmml_fast')
    assert after == before, f"library out of sync with notebooks: {sorted(set(before) ^ set(after)) or [k for k in before if before[k] != after.get(k)]}"
    assert not (repo/'pyproject.toml').exists()   # update_pyproject = False: setup.py is the only packaging

def test_nbdev_clean_leaves_no_diff(tmp_path):
    repo = _copy(tmp_path)
    before = _files(repo/'nbs')
    r = _nbdev('nbdev_clean', repo); assert r.returncode == 0, r.stderr
    after = _files(repo/'nbs')
    assert after == before, f"notebooks not clean: {[k for k in before if before[k] != after.get(k)]}"

def test_readme_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_library_notebooks_export_one_module_each():
    import json, re
    for nb in sorted((ROOT/'nbs').glob('[0-9][0-9]_*.ipynb')):
        src = ''.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code')
        mods = re.findall(r'^#\|\s*default_exp\s+(\S+)', src, re.M)
        assert len(mods) == 1, f"{nb.name} must export exactly one module, found {mods}"

"The main job's command line."
import subprocess, sys
from pathlib import Path

def run(*args):
    return subprocess.run([sys.executable, '-m', 'gmml_fast.train', *args], capture_output=True, text=True, timeout=300)

def test_main_job_writes_figure(tmp_path):
    r = run('--out', str(tmp_path), '--n', '2')
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'patches.png').stat().st_size > 1000
    assert 'train_images: 60000' in r.stdout and 'grid: (8, 8)' in r.stdout

def test_help_documents_options():
    r = run('--help')
    assert r.returncode == 0
    for opt in ('--out', '--arch', '--n', '--bs', '--download', '--seed'): assert opt in r.stdout

def test_bad_option_is_one_clear_line(tmp_path):
    r = run('--out', str(tmp_path), '--arch', 'huge_999')
    assert r.returncode != 0
    assert 'arch must be one of' in r.stderr and 'Traceback' not in r.stderr

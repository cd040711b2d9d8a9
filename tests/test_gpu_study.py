"""The GPU study (benchmarks/gpu.py) without a GPU: it refuses to start, in one line and at once, when it cannot measure
(no CUDA device, no Fashion-MNIST at --fmnist, results already saved), and its --dry_run passes through every part on
the CPU and writes a complete gpu.json and gpu.md. The helpers that only the GPU run exercises (the ratios, the
report of a GPU record) are checked on records made here."""
import importlib.util, json, math, os, subprocess, sys, time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
GPU_PY = REPO/'benchmarks'/'gpu.py'
FMNIST = Path('/usr/share/datasets/fashion-mnist')
HAS_FMNIST = all(any((FMNIST/f'{s}{z}').is_file() for z in ('', '.gz')) for s in
                 ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'))
needs_fmnist = pytest.mark.skipif(not HAS_FMNIST, reason=f'Fashion-MNIST is not installed at {FMNIST} (apt-get install dataset-fashion-mnist)')

def _load_gpu_module():
    "benchmarks/gpu.py as a module (its top level imports only the standard library)."
    spec = importlib.util.spec_from_file_location('gpu_study', GPU_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

gpu = _load_gpu_module()

def _study(*args, timeout=60):
    "Run the study in a subprocess; (completed process, seconds)."
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(GPU_PY), *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=timeout,
                       env=dict(os.environ, MPLBACKEND='Agg'))
    return r, time.perf_counter() - t0

def _one_line(stderr: str) -> str:
    "The refusal must be a single line (torch may print warnings before it: they are not the study's)."
    lines = [l for l in stderr.strip().splitlines() if l.startswith('gpu.py:')]
    assert len(lines) == 1, stderr
    return lines[0]

# ------------------------------------------------------------------------------------------- refusals, all fast
@pytest.mark.skipif(torch.cuda.is_available(), reason='a CUDA device is present: the study would run')
def test_without_cuda_it_stops_at_once_and_points_to_dry_run(tmp_path):
    args = ['--fmnist', FMNIST] if HAS_FMNIST else ['--parts', 'throughput,memory,ddp']   # (no --fmnist needed then)
    r, secs = _study(*args, '--out', tmp_path)
    assert r.returncode in (1, 2) and secs < 30
    line = _one_line(r.stderr)
    assert 'no CUDA device' in line and '--dry_run' in line
    assert not (tmp_path/'gpu.json').exists()           # nothing measured, nothing written

def test_a_bad_fmnist_path_fails_naming_the_option(tmp_path):
    r, secs = _study('--fmnist', tmp_path/'nowhere', '--dry_run', '--out', tmp_path/'out')
    assert r.returncode == 2 and secs < 30
    assert '--fmnist' in _one_line(r.stderr) and 'nowhere' in r.stderr
    assert not (tmp_path/'out').exists()
    # the right file names with other contents (here: empty files) are not Fashion-MNIST either
    bad = tmp_path/'empty'; bad.mkdir()
    for s in gpu.IDX_STEMS: (bad/s).write_bytes(b'')
    r, _ = _study('--fmnist', bad, '--dry_run', '--out', tmp_path/'out')
    assert r.returncode == 2 and '--fmnist' in _one_line(r.stderr)
    # without --fmnist the pretrain part cannot run, and the message says how to do without it
    r, _ = _study('--dry_run', '--out', tmp_path/'out')
    line = _one_line(r.stderr)
    assert r.returncode == 2 and '--fmnist' in line and '--parts' in line

def test_unknown_parts_are_refused(tmp_path):
    r, _ = _study('--parts', 'throughput,speed', '--dry_run', '--out', tmp_path)
    assert r.returncode == 2 and '--parts' in _one_line(r.stderr) and 'speed' in r.stderr

def test_it_never_overwrites_saved_results(tmp_path):
    saved = tmp_path/'gpu.json'
    saved.write_text('{"saved": true}')
    r, secs = _study('--parts', 'ddp', '--dry_run', '--out', tmp_path)
    assert r.returncode == 2 and secs < 30
    assert '--overwrite' in _one_line(r.stderr)
    assert saved.read_text() == '{"saved": true}' and not (tmp_path/'gpu.md').exists()

@needs_fmnist
def test_fmnist_layouts(tmp_path):
    "Debian's flat folder and torchvision's ROOT/FashionMNIST/raw are both accepted, and the CLI is pointed at exactly those files."
    assert gpu.check_fmnist(str(FMNIST)) == FMNIST.resolve()
    raw = tmp_path/'root'/'FashionMNIST'/'raw'; raw.mkdir(parents=True)
    for f in FMNIST.iterdir(): (raw/f.name).symlink_to(f)
    assert gpu.check_fmnist(str(tmp_path/'root')) == raw.resolve()
    assert gpu._torchvision_root(raw.resolve(), tmp_path) == (tmp_path/'root').resolve()
    flat_root = gpu._torchvision_root(FMNIST.resolve(), tmp_path/'t')
    linked = sorted(p.name for p in (flat_root/'FashionMNIST'/'raw').iterdir())
    assert linked == sorted(f.name for f in FMNIST.iterdir() if any(f.name.startswith(s) for s in gpu.IDX_STEMS))

# ------------------------------------------------------------------------------- helpers of the GPU run, on records
def _gpu_record():
    "A GPU-shaped record as main() leaves it, with made-up but consistent numbers (compiled configurations measured)."
    rows = []
    for i, m in enumerate(gpu.METHODS):
        for p in gpu.PRECISIONS:
            for c in gpu.COMPILES:
                ms = (4.0, 2.0, 1.0)[i]*(0.5 if p == 'bf16' else 1)*(0.8 if c else 1)
                rows.append(dict(method=m, precision=p, compile=c, status='ok', bs=256, step_ms=ms, images_per_s=256/ms*1000,
                                 peak_memory_mib=100.0 + i))
    rows[-1] = dict(method='ce', precision='bf16', compile='reduce-overhead', status='skipped (time budget)')
    return rows

def test_step_ratios_are_step_time_over_ce():
    rat = {(r['precision'], r['compile']): r for r in gpu.step_ratios(_gpu_record())}
    assert rat[('32', False)]['gmml_vs_ce'] == 4.0 and rat[('32', False)]['mae_vs_ce'] == 2.0
    assert rat[('bf16', False)]['gmml_vs_ce'] == 4.0
    assert ('bf16', True) in rat and ('bf16', 'reduce-overhead') not in rat   # CE was not timed there: no ratio is made up

def test_report_of_a_gpu_run():
    class S:      # what publish_matrix reads of a GPUStudy
        configs = _gpu_record()
        res = dict(parts=['throughput', 'memory'])
    gpu.publish_matrix(S)
    res = dict(S.res, dry_run=False, complete=False, command='python benchmarks/gpu.py --fmnist X', started='today',
               git_commit='a'*40, git_dirty=False, minutes=6.5, settings=gpu.SIZES['gpu'],
               machine=dict(device='NVIDIA H200', gpu_count=1, torch='2.x', cuda='12', cudnn=9, python='3.11'))
    md = gpu.render_md(res)
    assert md.splitlines()[0] == '# GPU study' and 'dry run' not in md.lower()
    assert '| GMML | 64000 | 80000 | 80000 | 128000 | 160000 | 160000 |' in md          # images/s: 256 / step time
    assert '| CE (finetune) | 256000 | 320000 | 320000 | 512000 | 640000 | skipped (time budget) |' in md
    assert '| fp32 eager | 1.00 | 4.00× | 2.00× |' in md
    assert '## Peak GPU memory (MiB)' in md and '| MAE | 101 | 101 | 101 | 101 | 101 | 101 |' in md
    assert '| fp32 CUDA graphs | 0.80 | 4.00× | 2.00× |' in md
    assert S.res['throughput']['status'] == 'ok' and len(S.res['memory']['configs']) == 18

def test_fastai_time_column():
    assert gpu._seconds('01:05') == 65 and gpu._seconds('1:00:00') == 3600 and gpu._seconds('') is None and gpu._seconds(None) is None

# ------------------------------------------------------------------------------------------- the dry run, end to end
@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    if not HAS_FMNIST: pytest.skip(f'Fashion-MNIST is not installed at {FMNIST} (apt-get install dataset-fashion-mnist)')
    out = tmp_path_factory.mktemp('gpu_dry')
    r, secs = _study('--fmnist', FMNIST, '--dry_run', '--out', out, timeout=300)
    return r, secs, out

@pytest.mark.slow
def test_dry_run_passes_through_every_part(dry_run):
    r, secs, out = dry_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out/'gpu.json').read_text())
    assert res['dry_run'] is True and res['complete'] is True and res['parts'] == list(gpu.PARTS)
    # the target is under 2 min on an idle 2-core CPU; the bound leaves room for a CPU shared with other jobs
    assert res['minutes'] < 3, f"the dry run took {res['minutes']} min (the study's target: under 2 on an idle CPU)"
    assert len(res['git_commit']) == 40 and res['machine']['torch'] == torch.__version__ and res['machine']['device'] == 'cpu (dry run)'
    # 1. throughput: every method × precision timed eager; compiled ones recorded as skipped in the dry run
    t = res['throughput']
    assert t['status'] == 'ok'
    got = {(c['method'], c['precision'], c['compile']): c for c in t['configs']}
    assert set(got) == {(m, p, c) for m in ('gmml', 'mae', 'ce') for p in ('32', 'bf16') for c in (False, True, 'reduce-overhead')}
    for (m, p, c), row in got.items():
        if c: assert row['status'] == 'skipped (dry run)'; continue
        assert row['status'] == 'ok' and row['images_per_s'] > 0 and row['finite'], row
        assert row['timed_steps'] == gpu.SIZES['dry']['steps'] and row['images_per_s'] == pytest.approx(1000*row['bs']/row['step_ms'], abs=0.051)
    ratios = {(q['precision'], q['compile']): q for q in t['ratios']}
    assert set(ratios) == {('32', False), ('bf16', False)}
    for q in ratios.values():
        assert q['gmml_vs_ce'] > 0 and q['mae_vs_ce'] > 0
    # 2. memory: one entry per configuration (no CUDA allocator on the CPU: the value is None, the key is there)
    assert res['memory']['status'] == 'ok' and len(res['memory']['configs']) == 18
    assert all('peak_memory_mib' in c for c in res['memory']['configs'] if c['status'] == 'ok')
    # 3. DDP: two gloo ranks on their own shards end with the same parameters, bit for bit
    d = res['ddp']
    assert d['status'] == 'ok' and d['world_size'] == 2 and d['backend'] == 'gloo' and d['devices'] == ['cpu', 'cpu']
    assert d['params_identical'] is True and d['params_allclose'] is True and d['shards_differ'] is True
    assert d['images_per_s'] > 0 and len(d['loss_first']) == len(d['loss_last']) == 2
    assert all(math.isfinite(v) for v in d['loss_first'] + d['loss_last'])
    # 4. pretraining through the CLI: one k-NN read-out per epoch, an accuracy
    p = res['pretrain']
    assert p['status'] == 'ok' and p['returncode'] == 0 and p['data'] == str(FMNIST.resolve())
    assert len(p['epochs']) == len(p['knn_per_epoch']) == p['epochs_asked'] == 1
    for e in p['epochs']:
        assert 0 <= e['knn'] <= 1 and math.isfinite(e['train_loss']) and math.isfinite(e['valid_loss']) and e['wall_s'] > 0
    assert sorted(f.name for f in out.iterdir()) == ['gpu.json', 'gpu.md']      # the CLI's run folder went to a temporary folder

@pytest.mark.slow
def test_dry_run_report(dry_run):
    r, secs, out = dry_run
    md = (out/'gpu.md').read_text()
    first = md.splitlines()[0]
    assert 'CPU dry run' in first and 'not a measurement' in first
    for heading in ('## Training-step throughput (images/s)', '## Peak GPU memory (MiB)', '## Two-process DDP',
                    '## GMML pretraining on Fashion-MNIST (the CLI)'):
        assert heading in md
    assert '| method | fp32 eager | fp32 compiled | fp32 CUDA graphs | bf16 eager | bf16 compiled | bf16 CUDA graphs |' in md
    assert '| GMML |' in md and '| MAE |' in md and '| CE (finetune) |' in md and 'skipped (dry run)' in md
    assert '| setting | CE step (ms) | GMML / CE | MAE / CE |' in md
    assert '| gloo | 2 | cpu, cpu |' in md and 'bit-identical' in md
    res = json.loads((out/'gpu.json').read_text())
    knn = res['pretrain']['epochs'][0]['knn']
    assert f"| 1 | {res['pretrain']['epochs'][0]['train_loss']:.4f} |" in md and f"| {knn:.3f} |" in md
    assert '## Errors' not in md

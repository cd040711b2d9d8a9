"""A seeded finetune gives the same numbers in a fresh Python process as after other work in one process (issue 41).

The README's quick start once gave other finetune accuracies when its three commands ran in one process than when
each ran in a process of its own. Each test here runs one tiny seeded finetune both ways, in two new interpreters
started side by side (one CPU thread each): one that does nothing else, and one that first does what can leave
global state behind (a GMML pretraining, other loaders and learners, draws from python's, numpy's and torch's global
generators, another seeded finetune). Losses, accuracy and the final weights must be bitwise equal.

* the command line (`python -m gmml_fast.train finetune`, what the README runs) against `main(argv)` called in one
  process after a `pretrain` and a `--pretrained` finetune, as `tools/quick_start.py` once did; the `--pretrained`
  finetune is also run fresh on the same pretraining run and compared;
* the library: `set_seed(seed)`, `finetune_dls('fashion_mnist', seed=)`, `finetune_learner(seed=)`, `fit_recipe()`, the order
  the command line uses. `set_seed` is the caller's part: a builder's `seed` fixes the callbacks' random streams
  only, while the initial weights come from torch's global generator and the training loader's shuffle from one
  drawn from python's `random` when the loaders are made.

Both tests: eight 2-epoch finetunes of 300 images and two 1-epoch pretrainings of 180, in seven interpreters, about
80 s of CPU time (measured: 96 s + 44 s wall on 2 cores already loaded by another job; about half that when idle).
"""
import pytest
import hashlib, json, os, subprocess, sys, time
from pathlib import Path

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
TIMEOUT = 600

# one tiny finetune: 300 labeled images (0.5 %), 9 batches of 32 per epoch, 2 epochs, a 1-block ViT-Nano, 100 test
# images; DRLoc and ME on, as in the README's quick start (their callbacks draw from their own seeded streams)
FT = ['finetune', '--depth', '1', '--epochs', '2', '--label_fraction', '0.005', '--bs', '32', '--n_valid', '100',
      '--drloc', '0.1', '--me', '0.2', '--seed', '0']
PRETRAIN = ['pretrain', '--depth', '1', '--epochs', '1', '--fraction', '0.003', '--bs', '32', '--n_valid', '40',
            '--monitor', '40', '--seed', '3']          # figures on (the default): the pretraining draws them too

_PRELUDE = """
import os, sys, json, random
import numpy as np, torch
torch.set_num_threads(1)

def noise():
    "Draws from the global generators, as any other work makes."
    torch.rand(7); torch.randn(3, 3); random.random(); random.shuffle(list(range(10))); np.random.rand(4)
"""


def _start(args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def _finish(p: subprocess.Popen) -> str:
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, f"{p.args[:4]}... failed:\n{err[-3000:]}"
    return out

def _run_folder(parent: Path) -> Path:
    (run,) = [d for d in Path(parent).iterdir() if d.is_dir()]
    return run

def _cli_numbers(parent: Path) -> dict:
    "What a finetune run folder measured: the history without its time column, the accuracies, the classifier's bytes."
    run = _run_folder(parent)
    history = [line.rsplit(',', 1)[0] for line in (run/'history.csv').read_text().splitlines()]
    res = json.loads((run/'result.json').read_text())
    return dict(history=history, **{k: res[k] for k in ('accuracy', 'per_class_accuracy', 'fgsm_accuracy_1_255')},
                classifier=hashlib.sha256((run/'classifier.safetensors').read_bytes()).hexdigest())


_CLI_AFTER = _PRELUDE + """
from pathlib import Path
from gmml_fast.datasets import pretrain_dls
from gmml_fast.train import main
out, PRETRAIN, FT = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
assert main([*PRETRAIN, '--out', str(out/'pretrain')]) == 0
(pre,) = (out/'pretrain').iterdir()
assert main([*FT, '--pretrained', str(pre), '--out', str(out/'pretrained')]) == 0
pretrain_dls('fashion_mnist', bs=16, size=28, fraction=0.002, seed=9)      # loaders drawn from the global generators
noise()
assert main([*FT, '--seed', '1', '--out', str(out/'other_seed')]) == 0
noise()
assert main([*FT, '--out', str(out/'random_init')]) == 0
"""

@pytest.mark.slow
def test_cli_finetune_same_fresh_and_after_other_work(tmp_path):
    "`python -m gmml_fast.train finetune` in a new interpreter = `main(['finetune', ...])` after a pretraining, a `--pretrained` finetune, a finetune with another seed and global draws in one process; the `--pretrained` finetune likewise."
    fresh, after = tmp_path/'fresh', tmp_path/'after'
    t0 = time.perf_counter()
    pretrained = lambda run: _start(['-m', 'gmml_fast.train', *FT, '--pretrained', str(run), '--out', str(fresh/'pretrained')], tmp_path)
    procs = [_start(['-m', 'gmml_fast.train', *FT, '--out', str(fresh/'random_init')], tmp_path),
             _start(['-c', _CLI_AFTER, str(after), json.dumps(PRETRAIN), json.dumps(FT)], tmp_path)]
    try:
        # the fresh `--pretrained` finetune starts as soon as the in-process pretraining has finished its run folder
        while len(procs) == 2 and procs[1].poll() is None:
            done = list((after/'pretrain').glob('*/result.json'))
            if done: procs.append(pretrained(done[0].parent))
            else: time.sleep(0.5)
        _finish(procs[1]); _finish(procs[0])
        if len(procs) == 2: procs.append(pretrained(_run_folder(after/'pretrain')))
        _finish(procs[2])
    finally:
        for p in procs:
            if p.poll() is None: p.kill(); p.wait()
    print(f"CLI: {time.perf_counter() - t0:.1f} s")
    for kind in ('random_init', 'pretrained'):
        a, b = _cli_numbers(fresh/kind), _cli_numbers(after/kind)
        assert a == b, f"{kind} finetune: a fresh process measured\n{a}\nafter other work in one process\n{b}"
    assert _cli_numbers(after/'other_seed')['classifier'] != _cli_numbers(after/'random_init')['classifier']  # the seed matters


_LIB = _PRELUDE + """
import hashlib
from fastai.torch_core import set_seed
from gmml_fast.datasets import finetune_dls, pretrain_dls
from gmml_fast.learner import finetune_learner, gmml_learner

def seeded_finetune(seed, **kw):
    "The command line's order: seed python, numpy and torch, then the loaders, then the learner."
    set_seed(seed)
    dls = finetune_dls('fashion_mnist', bs=32, label_fraction=0.005, size=28, seed=seed, n_valid=100)
    learn = finetune_learner(dls, arch='nano_28', encoder_kwargs=dict(depth=1), seed=seed, epochs=2, drloc=0.1, me=0.2, **kw)
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe()
    h = hashlib.sha256()
    for k, v in sorted(learn.model.state_dict().items()): h.update(k.encode()); h.update(v.contiguous().numpy().tobytes())
    return dict(batch_losses=[float(l) for l in learn.recorder.losses],
                epochs=[[float(x) for x in row] for row in learn.recorder.values],   # train, valid loss, accuracy, ce, drloc, me
                accuracy=float(learn.validate()[1]), weights=h.hexdigest())

if sys.argv[1] == 'after':
    # a short GMML pretraining on other loaders, a finetune of its encoder with another seed, more loaders, global draws
    dls = pretrain_dls('fashion_mnist', bs=32, size=28, fraction=0.003, seed=3, n_valid=40)
    pre = gmml_learner(dls, 'nano_28', encoder_kwargs=dict(depth=1), seed=5)
    with pre.no_bar(), pre.no_logging(): pre.fit(1)
    noise()
    seeded_finetune(1, pretrained=pre)
    finetune_dls('fashion_mnist', bs=16, label_fraction=0.01, size=28, seed=2)
    noise()
print('RESULT ' + json.dumps(seeded_finetune(0)))
"""

def _lib_result(out: str) -> dict:
    (line,) = [l for l in out.splitlines() if l.startswith('RESULT ')]
    return json.loads(line[len('RESULT '):])

@pytest.mark.slow
def test_library_finetune_same_fresh_and_after_other_work(tmp_path):
    "`set_seed` + `finetune_dls` + `finetune_learner` + `fit_recipe` in a new interpreter = the same after a GMML pretraining, another seeded finetune and global draws in one process."
    t0 = time.perf_counter()
    procs = [_start(['-c', _LIB, mode], tmp_path) for mode in ('fresh', 'after')]
    try: a, b = (_lib_result(_finish(p)) for p in procs)
    finally:
        for p in procs:
            if p.poll() is None: p.kill(); p.wait()
    print(f"library: {time.perf_counter() - t0:.1f} s")
    assert len(a['batch_losses']) == 18 and len(a['epochs']) == 2
    assert a == b, f"a fresh process measured\n{a}\nafter other work in one process\n{b}"

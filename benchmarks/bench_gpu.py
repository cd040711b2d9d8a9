"""GPU checks, for a machine with a CUDA device (run through `bash benchmarks/gpu_check.sh`, ≤ 8 min on one GPU):

1. the tests with CUDA branches (tests/test_cuda.py: the same keys draw the same masks and corruption as on the CPU,
   the learners train in float32, bf16 and fp16);
2. one epoch of GMML and of MAE pretraining on all 60,000 Fashion-MNIST images — float32 eager, bf16 eager, bf16
   compiled — with images/s after the first batches (compilation excluded) and peak GPU memory;
3. the corruption at 224 px: `gmml_corrupt` on a batch against the per-image Python loop of benchmarks/bench_corruption.py.

Writes benchmarks/results/gpu.{json,md}. Without a CUDA device it stops at once with one line.
"""
import argparse, json, platform, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

import torch

HERE = Path(__file__).parent

def need_cuda():
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device (torch.cuda.is_available() is False); run this on a GPU machine", file=sys.stderr)
        sys.exit(1)

def sync(): torch.cuda.synchronize()

def run_tests():
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', str(HERE.parent/'tests'/'test_cuda.py')],
                       capture_output=True, text=True, cwd=HERE.parent)
    tail = (r.stdout + r.stderr).strip().splitlines()
    print('\n'.join(tail[-15:]), flush=True)
    return dict(returncode=r.returncode, summary=tail[-1] if tail else '', minutes=round((time.perf_counter() - t0)/60, 2))

def pretrain_epoch(method, precision, compile, bs, arch):
    from fastai.callback.core import Callback
    from gmml_fast.data import fmnist_pretrain_dls
    from gmml_fast.learner import gmml_learner, mae_learner
    class Timer(Callback):
        "Wall time of the training batches after the first `skip` (compilation and warm-up excluded)."
        def __init__(self, skip=20): self.skip, self.n, self.t0, self.t1 = skip, 0, None, None
        def before_batch(self):
            if self.training and self.n == self.skip: sync(); self.t0 = time.perf_counter()
        def after_batch(self):
            if self.training: self.n += 1
        def after_train(self): sync(); self.t1 = time.perf_counter()
    torch.manual_seed(0)
    dls = fmnist_pretrain_dls(bs=bs, size=32, n_valid=1000, device=torch.device('cuda'))
    build = gmml_learner if method == 'gmml' else mae_learner
    learn = build(dls, arch, seed=0, lr=1e-3, precision=precision, compile=compile)
    torch.cuda.reset_peak_memory_stats()
    timer = Timer()
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_warmup_cosine(1, cbs=[timer])
    sync()
    losses = [float(v) for v in learn.recorder.losses]
    steps = timer.n - timer.skip
    return dict(method=method, precision=precision, compile=compile, arch=arch, bs=bs, steps=len(losses),
                images_per_s=round(steps*bs/(timer.t1 - timer.t0), 1), epoch_s=round(time.perf_counter() - t0, 1),
                loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4), finite=all(v == v for v in losses),
                peak_memory_mib=round(torch.cuda.max_memory_allocated()/2**20, 1))

def corruption_224(batch=64, repeats=5):
    sys.path.insert(0, str(HERE))
    from bench_corruption import loop_gmml_corrupt
    from gmml_fast.aliens import gmml_corrupt
    x = torch.randn(batch, 3, 224, 224, device='cuda')
    def timed(fn, n):
        fn(); sync()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter(); fn(); sync(); ts.append(time.perf_counter() - t0)
        return sorted(ts)[len(ts)//2]
    t_batch = timed(lambda: gmml_corrupt(x, 'gmml', seed=0), repeats)
    t_loop = timed(lambda: loop_gmml_corrupt(x, 'gmml', seed=0), 1)
    return dict(shape=f'{batch}×3×224×224', batched_ms=round(1000*t_batch, 2), loop_ms=round(1000*t_loop, 1),
                batched_img_s=round(batch/t_batch), loop_img_s=round(batch/t_loop, 1), speedup=round(t_loop/t_batch, 1))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--arch', default='tiny_32', help='encoder preset for the pretraining epochs (default tiny_32)')
    ap.add_argument('--bs', type=int, default=256, help='batch size of the pretraining epochs (default 256)')
    ap.add_argument('--out', default=str(HERE/'results'), help='folder for gpu.json and gpu.md')
    a = ap.parse_args(argv)
    need_cuda()
    t0 = time.perf_counter()
    res = dict(command='bash benchmarks/gpu_check.sh' + ''.join(f' {v}' for v in (argv if argv is not None else sys.argv[1:])),
               started=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'), gpu=torch.cuda.get_device_name(),
               torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
               git_commit=subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=HERE).stdout.strip())
    print('1/3 tests with CUDA branches', flush=True)
    res['tests'] = run_tests()
    print('2/3 one pretraining epoch per method and setting', flush=True)
    res['pretraining'] = []
    for method in ('gmml', 'mae'):
        for precision, compile in (('32', False), ('bf16', False), ('bf16', True)):
            r = pretrain_epoch(method, precision, compile, a.bs, a.arch); res['pretraining'].append(r); print(r, flush=True)
    print('3/3 corruption at 224 px', flush=True)
    res['corruption_224'] = corruption_224(); print(res['corruption_224'], flush=True)
    res['minutes'] = round((time.perf_counter() - t0)/60, 2)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out/'gpu.json').write_text(json.dumps(res, indent=1))
    base = {r['method']: r['images_per_s'] for r in res['pretraining'] if r['precision'] == '32' and not r['compile']}
    c = res['corruption_224']
    md = ['# GPU checks', '', f"GPU: {res['gpu']}; torch {res['torch']} (CUDA {res['cuda']}), Python {res['python']}; commit {res['git_commit']}; "
          f"{res['started']}; {res['minutes']} min in all. Command: `{res['command']}`.", '',
          f"Tests with CUDA branches (`tests/test_cuda.py`): **{res['tests']['summary']}** (exit code {res['tests']['returncode']}).", '',
          f"## One pretraining epoch (60,000 images, `{a.arch}`, batch {a.bs})", '',
          'images/s over the steps after the first 20 (so compilation is excluded); peak memory from `torch.cuda.max_memory_allocated`.', '',
          '| method | precision | compiled | images/s | vs float32 eager | epoch (s, with compilation) | loss first → last | peak memory (MiB) |',
          '|---|---|---|---|---|---|---|---|']
    md += [f"| {r['method']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | {r['images_per_s']:.0f} | "
           f"{r['images_per_s']/base[r['method']]:.2f}× | {r['epoch_s']} | {r['loss_first']} → {r['loss_last']}{'' if r['finite'] else ' (NaN!)'} | "
           f"{r['peak_memory_mib']} |" for r in res['pretraining']]
    md += ['', '## Corruption at 224 px', '', f"`gmml_corrupt` ('gmml' recipe) on {c['shape']} on the GPU: {c['batched_ms']} ms per batch "
           f"({c['batched_img_s']} images/s); the per-image Python loop of `bench_corruption.py` on the same GPU tensors: {c['loop_ms']} ms "
           f"({c['loop_img_s']} images/s) — the batched code is **{c['speedup']}×** faster."]
    (out/'gpu.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))
    return 0 if res['tests']['returncode'] == 0 else 1

if __name__ == '__main__': sys.exit(main())

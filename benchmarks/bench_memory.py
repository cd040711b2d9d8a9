"""Peak memory of one training step, so that users can size their batches: GMML, MAE and finetuning (CE + DRLoc + ME)
at ViT-Tiny on 32-px images (batch 64) and ViT-S on 224-px images (batch 8). Each configuration runs in a fresh process:
on the CPU the number is the growth of the process's peak resident memory (RSS) over three training steps, measured
from just before the first step (weights and data already in memory; the optimizer's moment buffers are created during
the first step, so they are counted); on a GPU it is
`torch.cuda.max_memory_allocated` over the same steps.

    python benchmarks/bench_memory.py            # writes benchmarks/results/memory.{json,md}

Random images stand in for data (memory does not depend on the pixels).
"""
import argparse, json, resource, subprocess, sys, time
from pathlib import Path

import torch

CONFIGS = [(m, arch, size, bs) for arch, size, bs in (('tiny_32', 32, 64), ('small_224', 224, 8)) for m in ('gmml', 'mae', 'finetune')]

def one(method, arch, size, bs, precision):
    "Run 3 training steps of one configuration in this process; return the memory they took (MiB)."
    from fastai.callback.core import Callback, CancelFitException
    from gmml_fast.data import tensor_dls, image_batch_tfms
    from gmml_fast.learner import gmml_learner, mae_learner, finetune_learner
    cuda = torch.cuda.is_available()
    x = torch.randint(0, 256, (4*bs, 3, size, size), dtype=torch.uint8)
    y = torch.randint(0, 10, (4*bs,))
    tf = image_batch_tfms(([0.5]*3, [0.25]*3))
    dev = torch.device('cuda') if cuda else None
    if method == 'finetune':
        dls = tensor_dls(x, x[:bs], y, y[:bs], vocab=list('abcdefghij'), bs=bs, after_batch=tf, device=dev)
        learn = finetune_learner(dls, arch=arch, drloc=0.1, me=0.2, seed=0, precision=precision)
    else:
        dls = tensor_dls(x, x[:bs], bs=bs, after_batch=tf, device=dev)
        learn = (gmml_learner if method == 'gmml' else mae_learner)(dls, arch, seed=0, precision=precision)
    class Measure(Callback):
        order = -20
        def before_batch(self):
            if self.iter == 0:
                if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); self.base = torch.cuda.memory_allocated()
                else: self.base = _rss_mib()
        def after_batch(self):
            if self.iter == 2: raise CancelFitException
    m = Measure()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=[m])
    if cuda: return (torch.cuda.max_memory_allocated() - m.base)/2**20, torch.cuda.max_memory_allocated()/2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024          # Linux: KiB
    return peak - m.base, peak

def _rss_mib():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'): return int(line.split()[1])/1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--child', nargs=5, metavar=('METHOD', 'ARCH', 'SIZE', 'BS', 'PRECISION'), help=argparse.SUPPRESS)
    ap.add_argument('--precision', default='32', help="32 or bf16 (default 32)")
    a = ap.parse_args(argv)
    if a.child:
        step, total = one(a.child[0], a.child[1], int(a.child[2]), int(a.child[3]), a.child[4])
        print(json.dumps(dict(step_mib=round(step, 1), peak_mib=round(total, 1)))); return 0
    rows, t0 = [], time.perf_counter()
    for method, arch, size, bs in CONFIGS:
        r = subprocess.run([sys.executable, __file__, '--child', method, arch, str(size), str(bs), a.precision],
                           capture_output=True, text=True)
        if r.returncode: print(r.stderr[-2000:], file=sys.stderr); return 1
        rows.append(dict(method=method, arch=arch, size=size, bs=bs, **json.loads(r.stdout.strip().splitlines()[-1])))
        print(rows[-1], flush=True)
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'
    res = dict(command='python benchmarks/bench_memory.py' + (f' --precision {a.precision}' if a.precision != '32' else ''),
               device=where, precision=a.precision, torch=torch.__version__, rows=rows, minutes=round((time.perf_counter() - t0)/60, 1))
    kind = 'growth of peak GPU memory (`max_memory_allocated`)' if where != 'CPU' else 'growth of peak resident memory (RSS)'
    md = ['# Memory of a training step', '', f"Device: {where}; torch {res['torch']}; precision {a.precision}. Command: `{res['command']}` "
          f"({res['minutes']} min). Per configuration, in a fresh process: the {kind} over three training steps, from just before the "
          "first one (weights and data already in memory; the optimizer's moment buffers are created in the first step and counted), and the process's peak.", '',
          '| step | encoder | images | batch | step memory (MiB) | process peak (MiB) |', '|---|---|---|---|---|---|']
    md += [f"| {r['method']}{' (CE + DRLoc + ME)' if r['method'] == 'finetune' else ''} | {r['arch']} | {r['size']} px | {r['bs']} | "
           f"{r['step_mib']:.0f} | {r['peak_mib']:.0f} |" for r in rows]
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_common import write_results
    write_results('memory' + ('' if a.precision == '32' else f'_{a.precision}'), res, md)
    return 0

if __name__ == '__main__': sys.exit(main())

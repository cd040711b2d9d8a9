"""Every throughput comparison of the project in one run and one table: batched corruption vs a per-image loop,
GMML / MAE / finetuning steps, and fastai vs a raw PyTorch loop. Each ratio divides two numbers measured in this
same run (same process, same machine state), so it is meaningful even where absolute timings drift between runs.

    python benchmarks/bench_throughput.py             # ~10 minutes on 2 CPU cores
    python benchmarks/bench_throughput.py --quick     # fewer steps (~2 minutes), written to throughput_quick.*

Writes benchmarks/results/throughput.json and throughput.md (refuses to overwrite them without --overwrite).
It replaced bench_corruption.py and bench_pretrain.py (their results, measured with an older recipe, disagreed with it);
their per-image corruption loop and raw PyTorch training loop live on here as the references of two ratios.
"""
import argparse, json, math, random, statistics, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F
from fastai.callback.core import Callback

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import cpu_name, RECIPE_BEFORE

from gmml_fast.aliens import gmml_corrupt, GMMLCorruption, get_recipe, to_grayscale
from gmml_fast.losses import MaskedL1Loss
from gmml_fast.rng import rng_key
from gmml_fast.callbacks import no_decay_params
from gmml_fast.data import fmnist_pretrain_dls, fmnist_finetune_dls, load_fashion_mnist
from gmml_fast.learner import gmml_learner, mae_learner, simmim_learner, finetune_learner
from gmml_fast.evaluate import KNNMonitor
from gmml_fast.train import PretrainConfig


# ---------------------------------------------------------------- the per-image loop baseline (same algorithm)
def _loop_block_mask(rng, gh, gw, budget, n_blocks, hmin, hmax, wmin, wmax):
    "One image: draw up to n_blocks rectangles in order, keep them while the union fits, trim the first that does not, fill."
    m = torch.zeros(gh, gw, dtype=torch.bool)
    count = 0
    for _ in range(n_blocks):
        h, w = rng.randint(hmin, hmax), rng.randint(wmin, wmax)
        t, l = rng.randint(0, gh - h), rng.randint(0, gw - w)
        new = int((~m[t:t+h, l:l+w]).sum())
        if count + new <= budget:
            m[t:t+h, l:l+w] = True; count += new
            continue
        sub = ~m[t:t+h, l:l+w]
        idx = sub.flatten().nonzero().flatten()[:budget - count]      # its top rows first
        sub_flat = torch.zeros(h*w, dtype=torch.bool); sub_flat[idx] = True
        m[t:t+h, l:l+w] |= sub_flat.view(h, w)
        count = budget
        break
    if count < budget:                                                 # fill: units touching a block first, then any
        for border_only in (True, False):
            cand = ~m
            if border_only: cand &= F.max_pool2d(m[None, None].float(), 3, 1, 1)[0, 0] > 0
            idx = cand.flatten().nonzero().flatten()
            start = rng.randrange(gh*gw)
            idx = torch.cat([idx[idx >= start], idx[idx < start]])[:budget - count]
            m.view(-1)[idx] = True; count += len(idx)
    return m

def loop_gmml_corrupt(x, recipe='gmml', align=1, seed=0):
    "Per-image Python-loop implementation of the same corruption recipe."
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    B, C, H, W = x.shape
    dev = x.device                       # on a GPU every per-image step below is its own small kernel launch
    out, mask = x.clone(), torch.zeros(B, 1, H, W, dtype=torch.bool, device=dev)
    for b in range(B):
        for s in get_recipe(recipe):
            kind = s.kind
            if kind == 'grayscale' and C == 1: continue
            a = s.align or align
            gh, gw = H//a, W//a
            side = lambda n, f: max(1, min(n, round(f*n)))
            hmin, hmax, wmin, wmax = side(gh, s.size[0]), side(gh, s.size[1]), side(gw, s.size[0]), side(gw, s.size[1])
            if s.n_blocks is None:
                lo, hi = (s.ratio, s.ratio) if isinstance(s.ratio, float) else s.ratio
                budget = math.floor(rng.uniform(lo, hi)*gh*gw)
                n_blocks = int(min(96, math.ceil(3*math.floor(hi*gh*gw)/((hmin + hmax)/2*(wmin + wmax)/2)) + 2))
                m = _loop_block_mask(rng, gh, gw, budget, n_blocks, hmin, hmax, wmin, wmax)
            else:
                m = _loop_block_mask(rng, gh, gw, gh*gw, s.n_blocks, hmin, hmax, wmin, wmax)
            if a > 1: m = m.repeat_interleave(a, 0).repeat_interleave(a, 1)
            m, img = m.to(dev), out[b]
            if kind == 'zeros': alien = torch.zeros_like(img)
            elif kind == 'noise' or (kind == 'noise_or_zeros' and rng.random() < 0.5): alien = s.noise_std*torch.randn(img.shape, generator=g).to(dev)
            elif kind == 'noise_or_zeros': alien = torch.zeros_like(img)
            elif kind == 'replace': alien = x[rng.choice([i for i in range(B) if i != b])] if B > 1 else torch.randn(img.shape, generator=g).to(dev)
            elif kind == 'grayscale': alien = to_grayscale(img[None])[0]
            else:
                sigma, k = rng.uniform(*s.sigma), rng.choice(range(s.kernel[0], s.kernel[1] + 1, 2))
                t = torch.arange(-(k//2), k//2 + 1, dtype=x.dtype, device=dev)
                ker = torch.exp(-t**2/(2*sigma**2)); ker = ker/ker.sum()
                y = F.pad(img[None], (k//2, k//2, k//2, k//2), mode='replicate')
                y = F.conv2d(y, ker.view(1, 1, 1, k).expand(C, 1, 1, k), groups=C)
                alien = F.conv2d(y, ker.view(1, 1, k, 1).expand(C, 1, k, 1), groups=C)[0]
            out[b] = torch.where(m, alien, img)
            mask[b, 0] |= m
    return out, mask

# ---------------------------------------------------------------- timing helpers
def timeit(fn, repeats, warmup=1):
    for _ in range(warmup): fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


# ---------------------------------------------------------------- fastai and raw-loop step rates
class TrainTimer(Callback):
    "Wall time of the training phase of each epoch (no validation)."
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter() - self.t0)
    def before_fit(self): self.times = []

def fastai_rate(learn, n_batches, epochs):
    timer = TrainTimer()
    learn.fit(epochs, cbs=[timer])
    return n_batches*learn.dls.train.bs/statistics.median(timer.times[1:])     # first epoch = warm-up

def raw_gmml_rate(dls, model, corruption, lr, wd, epochs):
    "The same GMML step without fastai: our own batching of the same tensors, the same transforms, torch AdamW."
    decay = set(map(id, no_decay_params(model)))
    groups = [dict(params=[p for p in model.parameters() if id(p) not in decay], weight_decay=wd),
              dict(params=[p for p in model.parameters() if id(p) in decay], weight_decay=0.0)]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    loss_fn, images, bs = MaskedL1Loss(), dls.train.images, dls.train.bs
    tfms, gen = dls.train.after_batch, torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(images))
        for i in range(0, len(images) - bs + 1, bs):
            x = tfms(images[perm[i:i+bs]])
            xc, m = corruption(x, key=rng_key(generator=gen))
            loss = loss_fn(model(xc), x, m)
            opt.zero_grad(); loss.backward(); opt.step()
        times.append(time.perf_counter() - t0)
    return (len(images)//bs)*bs/statistics.median(times[1:])


NANO = 'ViT-Nano/6 at 28 px'
MODELS = ('GMML', 'MAE', 'SimMIM', 'finetune')

def compute_ratios(rows: dict) -> dict:
    "Every ratio of the report, from the measured images/s `rows` alone (so that `--report` can rebuild it from the JSON)."
    g = rows['GMML step (fastai)']
    nano_rate = lambda name, label: rows[f'{name} step, {NANO}, {label} (fastai)']
    cli = PretrainConfig()
    epoch_s = 60000*cli.fraction/nano_rate('GMML', 'float32')         # one epoch of the default pretraining job
    monitors = {k.split(' monitor read-out')[0]: k for k in rows if 'monitor read-out' in k}
    n_images = cli.monitor + cli.monitor//4
    return {
        'corruption: batched / per-image loop': rows['gmml_corrupt, batched (256×3×32×32)']/rows['gmml_corrupt, per-image loop (256×3×32×32)'],
        'MAE (192×4) step / GMML step': rows['MAE step, decoder 192-d × 4 (fastai)']/g,
        'MAE (128×1) step / GMML step': rows['MAE step, decoder 128-d × 1 (fastai)']/g,
        'GMML step time / classification (CE) step time, ViT-Tiny (target ≤ 1.1×)': rows['finetune step, CE (fastai)']/g,
        'GMML step time / classification (CE) step time, ViT-Nano/6 (target ≤ 1.1×)': nano_rate('finetune', 'float32')/nano_rate('GMML', 'float32'),
        'finetune CE+DRLoc+ME step / CE step': rows['finetune step, CE + DRLoc + ME (fastai)']/rows['finetune step, CE (fastai)'],
        'fastai / raw loop (GMML step)': g/rows['GMML step (raw PyTorch loop)'],
        'MAE / GMML step, ViT-Nano/6 (default decoders)': nano_rate('MAE', 'float32')/nano_rate('GMML', 'float32'),
        'SimMIM / GMML step, ViT-Nano/6': nano_rate('SimMIM', 'float32')/nano_rate('GMML', 'float32'),
        **{f'{n} step, ViT-Nano/6: {label} / float32': nano_rate(n, label)/nano_rate(n, 'float32')
           for n in MODELS for label in ('bf16', 'compiled')},
        **{f'{label} monitor / one epoch of the default pretrain job ({60000*cli.fraction:,.0f} images, GMML ViT-Nano/6 step rate)':
           n_images/rows[k]/epoch_s for label, k in monitors.items()},
    }


def main(quick=False, overwrite=False, threads=None):
    if threads: torch.set_num_threads(threads)
    out = Path(__file__).parent/'results'; out.mkdir(exist_ok=True)
    stem = 'throughput_quick' if quick else 'throughput'
    if not overwrite and (out/f'{stem}.json').exists():
        sys.exit(f"error: {out/stem}.json exists; pass --overwrite to replace it")
    torch.manual_seed(0)
    t_start = time.perf_counter()
    n_batches, bs, epochs = (4, 128, 2) if quick else (8, 128, 3)
    rows = {}

    # 1. corruption: the batched implementation vs a per-image Python loop running the same algorithm
    x = torch.randn(256, 3, 32, 32)
    t_batch = timeit(lambda: gmml_corrupt(x, 'gmml', seed=0), 2 if quick else 5)
    t_loop = timeit(lambda: loop_gmml_corrupt(x, 'gmml', seed=0), 1 if quick else 3, warmup=0)
    rows['gmml_corrupt, batched (256×3×32×32)'] = 256/t_batch
    rows['gmml_corrupt, per-image loop (256×3×32×32)'] = 256/t_loop
    print('corruption done', flush=True)

    # 2. training steps on real Fashion-MNIST batches (3×32×32), ViT-Tiny, median epoch after a warm-up epoch
    dls = fmnist_pretrain_dls(bs=bs, size=32, channels=3, fraction=n_batches*bs/60000 + 1e-6, n_valid=128, seed=0)
    nb = len(dls.train)
    def rate(learn):            # images/s over the learner's own training batches (the loaders of a row may differ in length)
        learn.remove_cb(learn.progress)
        return fastai_rate(learn, len(learn.dls.train), epochs)
    rows['GMML step (fastai)'] = rate(gmml_learner(dls, 'tiny_32', lr=1e-4, seed=0, **RECIPE_BEFORE))
    rows['MAE step, decoder 192-d × 4 (fastai)'] = rate(mae_learner(dls, 'tiny_32', lr=1e-4, seed=0, **RECIPE_BEFORE))
    rows['MAE step, decoder 128-d × 1 (fastai)'] = rate(mae_learner(dls, 'tiny_32', decoder_dim=128, decoder_depth=1,
                                                                    decoder_heads=4, lr=1e-4, seed=0, **RECIPE_BEFORE))
    fdls = fmnist_finetune_dls(bs=bs, label_fraction=n_batches*bs/60000 + 1e-6, size=32, channels=3, n_valid=128, seed=0)
    rows['finetune step, CE (fastai)'] = rate(finetune_learner(fdls, arch='tiny_32', lr=1e-4))
    rows['finetune step, CE + DRLoc + ME (fastai)'] = rate(finetune_learner(fdls, arch='tiny_32', lr=1e-4, drloc=0.1, me=0.2))
    print('fastai steps done', flush=True)
    raw_model = gmml_learner(dls, 'tiny_32', lr=1e-4, seed=0, **RECIPE_BEFORE).model
    rows['GMML step (raw PyTorch loop)'] = raw_gmml_rate(dls, raw_model, GMMLCorruption('gmml'), 1e-4, 0.05, epochs)

    # 3. precision and compilation at the default encoder of the quick start (ViT-Nano, 6 blocks, 28 px, 7×7 tokens)
    frac = n_batches*bs/60000 + 1e-6
    ndls = fmnist_pretrain_dls(bs=bs, size=28, fraction=frac, n_valid=128, seed=0)
    nfdls = fmnist_finetune_dls(bs=bs, label_fraction=frac, size=28, n_valid=128, seed=0)
    nano = dict(encoder_kwargs=dict(depth=6))
    builders = {'GMML': lambda **k: gmml_learner(ndls, 'nano_28', lr=1e-4, seed=0, **nano, **k),
                'MAE': lambda **k: mae_learner(ndls, 'nano_28', lr=1e-4, seed=0, **nano, **k),   # default decoder: 96-d × 2
                'SimMIM': lambda **k: simmim_learner(ndls, 'nano_28', lr=1e-4, seed=0, **nano, **k),
                'finetune': lambda **k: finetune_learner(nfdls, arch='nano_28', lr=1e-4, **nano, **k)}
    for name, build in builders.items():
        for label, kw in (('float32', {}), ('bf16', dict(precision='bf16')), ('compiled', dict(compile=True))):
            torch._dynamo.reset()
            rows[f'{name} step, ViT-Nano/6 at 28 px, {label} (fastai)'] = rate(build(**kw))
    print('precision and compilation done', flush=True)

    # 4. the k-NN monitor of the command line at its defaults (--monitor 2000: 2,000 bank + 500 query images, after every
    #    epoch), against one epoch of the default pretraining job (--fraction 0.5 of 60,000 images) at the GMML step rate above
    cli = PretrainConfig()
    n_bank, n_query = cli.monitor, cli.monitor//4
    xm, ym = load_fashion_mnist('train')
    monitor_s = {}
    for label, linear in (('k-NN', False), ('k-NN + linear probe', True)):
        mon = KNNMonitor((xm[:n_bank], ym[:n_bank]), (xm[n_bank:n_bank + n_query], ym[n_bank:n_bank + n_query]), linear=linear)
        mlearn = builders['GMML']()
        mlearn.remove_cb(mlearn.progress)
        mlearn.fit(2, cbs=[mon])
        monitor_s[label] = min(mon.seconds)          # the second read-out: warm caches, as in a long run
    for label, sec in monitor_s.items(): rows[f'{label} monitor read-out ({n_bank:,} + {n_query} images)'] = (n_bank + n_query)/sec
    print('monitor done', flush=True)

    ratios = compute_ratios(rows)
    wall = time.perf_counter() - t_start
    res = dict(machine=f'{cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, '
                       + (torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'),
               command='python benchmarks/bench_throughput.py' + (' --quick' if quick else ''),
               setup=f'ViT-Tiny (192-d, 12 blocks, patch 4) on 3×32×32 Fashion-MNIST batches of {bs}; {nb} batches per epoch, '
                     f'median of {epochs - 1} epoch(s) after one warm-up epoch; corruption on random 256×3×32×32 batches',
               images_per_s=rows, ratios=ratios, wall_s=round(wall, 1))
    write_report(out, stem, res)


def write_report(out: Path, stem: str, res: dict) -> None:
    "Write `res` (rows, ratios, setup) to <stem>.json and the table to <stem>.md, and print the table."
    rows, ratios, wall = res['images_per_s'], res['ratios'], res['wall_s']
    (out/f'{stem}.json').write_text(json.dumps(res, indent=1))
    md = ['# Throughput, collected', '', f"Machine: {res['machine']}.  ", f"Command: `{res['command']}` (wall time {wall/60:.1f} min).  ",
          f"Setup: {res['setup']}.", '', '| what | images/s |', '|---|---|'] + [f'| {k} | {v:.1f} |' for k, v in rows.items()]
    md += ['', 'Ratios, each of two numbers measured in this run:', '', '| ratio | value |', '|---|---|']
    md += [f'| {k} | {100*v:.1f} % (target ≤ 5 %) |' if 'monitor' in k else f'| {k} | {v:.2f}× |' for k, v in ratios.items()]
    if not torch.cuda.is_available():
        md += ['', 'Measured on a CPU: a ratio below 1 is reported as it is. Mixed precision and compilation are aimed at GPUs; '
                   '`benchmarks/gpu_check.sh` measures them on one.']
    (out/f'{stem}.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='fewer steps; writes throughput_quick.*')
    ap.add_argument('--overwrite', action='store_true', help='replace existing results')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s choice)')
    ap.add_argument('--report', action='store_true', help='rebuild the ratios and the table from the saved JSON without measuring')
    a = ap.parse_args()
    if a.report:
        out, stem = Path(__file__).parent/'results', 'throughput_quick' if a.quick else 'throughput'
        res = json.loads((out/f'{stem}.json').read_text())
        res['ratios'] = compute_ratios(res['images_per_s'])
        write_report(out, stem, res)
    else: main(a.quick, a.overwrite, a.threads)

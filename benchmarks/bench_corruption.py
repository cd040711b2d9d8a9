"""Throughput of `gmml_corrupt` (batched, on device) against a straightforward per-image Python loop running the same
algorithm, and the corruption's share of a ViT-Tiny training step at 32 px. All numbers are measured in one run.

    python benchmarks/bench_corruption.py            # full run (a few minutes on 2 CPU cores)
    python benchmarks/bench_corruption.py --quick    # fewer repeats

Writes benchmarks/results/corruption.json and corruption.md.
"""
import argparse, math, platform, random, statistics, time

import torch
import torch.nn.functional as F

from gmml_fast.aliens import gmml_corrupt, get_recipe, to_grayscale
from gmml_fast.patches import create_encoder
from bench_common import write_results

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

def vit_step_time(bs, repeats):
    enc = create_encoder('tiny_32', num_classes=10)
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-4)
    x, y = torch.randn(bs, 3, 32, 32), torch.randint(0, 10, (bs,))
    def step():
        loss = F.cross_entropy(enc(x), y); opt.zero_grad(); loss.backward(); opt.step()
    return timeit(step, repeats)

def main(quick=False):
    torch.manual_seed(0)
    rows, r = [], 2 if quick else 5
    for (B, C, H), recipe in [((256, 3, 32), 'gmml'), ((256, 3, 32), 'comb1'), ((64, 3, 224), 'gmml')]:
        x = torch.randn(B, C, H, H)
        t_batch = timeit(lambda: gmml_corrupt(x, recipe, seed=0), r)
        t_loop = timeit(lambda: loop_gmml_corrupt(x, recipe, seed=0), 1 if quick or H > 64 else 3, warmup=0)
        rows.append(dict(shape=f'{B}×{C}×{H}×{H}', recipe=recipe, batched_img_s=B/t_batch, loop_img_s=B/t_loop,
                         speedup=t_loop/t_batch, batched_ms=1000*t_batch, loop_ms=1000*t_loop))
        print(rows[-1], flush=True)
    t_step = vit_step_time(256, r)
    t_corr = timeit(lambda: gmml_corrupt(torch.randn(256, 3, 32, 32), 'gmml', seed=0), r)
    share = dict(vit_tiny_step_ms=1000*t_step, corruption_ms=1000*t_corr, share_of_step=t_corr/(t_step + t_corr))
    print(share)
    res = dict(machine=f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, '
                       f'torch {torch.__version__}, no GPU' if not torch.cuda.is_available() else torch.cuda.get_device_name(),
               command='python benchmarks/bench_corruption.py' + (' --quick' if quick else ''), rows=rows, step=share)
    md = ['# gmml_corrupt throughput', '', f"Machine: {res['machine']}. Command: `{res['command']}`.", '',
          '| batch | recipe | batched (img/s) | per-image loop (img/s) | speed-up |', '|---|---|---|---|---|']
    md += [f"| {o['shape']} | {o['recipe']} | {o['batched_img_s']:.0f} | {o['loop_img_s']:.0f} | {o['speedup']:.1f}× |" for o in rows]
    md += ['', f"ViT-Tiny (patch 4) forward+backward+AdamW step on 256×3×32×32: {share['vit_tiny_step_ms']:.0f} ms; "
               f"`gmml_corrupt` ('gmml' recipe) on the same batch: {share['corruption_ms']:.1f} ms = "
               f"{100*share['share_of_step']:.1f} % of the step including corruption."]
    write_results('corruption', res, md)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='fewer repeats')
    main(ap.parse_args().quick)

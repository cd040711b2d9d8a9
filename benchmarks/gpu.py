"""The GPU study: what the package's speed options buy on one GPU, in one run of under 10 minutes (≤ 7 min planned on an H200).

    python -m benchmarks.gpu --fmnist PATH [--epochs 5] [--bs 256] [--out benchmarks/results]
                             [--parts throughput,memory,ddp,pretrain] [--dry_run] [--overwrite]

Four parts, each wrapped so that a failing one records its error and the others still run:

1. throughput — images/s of a GMML, an MAE and a CE (supervised finetuning) training step of ViT-Tiny at 32 px (preset
   'tiny_32'), in precision '32' and 'bf16', eager, under torch.compile and as CUDA graphs (mode 'reduce-overhead'),
   built by the library's own builders (`gmml_learner`, `mae_learner`, `finetune_learner`) on synthetic images that
   live on the GPU, so that the numbers are the training step's and not a data loader's. A fastai callback times the steps after the warm-up steps (the
   compilation happens there) between two `torch.cuda.synchronize()`; the GMML/CE and MAE/CE step-time ratios follow.
2. memory — the peak GPU memory (`torch.cuda.max_memory_allocated`, reset per configuration) of those same runs.
3. ddp — two processes of data-parallel GMML training with raw `torch.distributed`: NCCL with one rank per GPU where
   there are two GPUs, else gloo with both ranks on cuda:0 (NCCL refuses two ranks on one device; gloo all-reduces CUDA
   tensors). Raw torch, not fastai/Accelerate, because those map rank r to cuda:LOCAL_RANK, a device one GPU lacks.
   Each rank trains on its own shard; the study records images/s over both ranks, the first and last losses, and
   whether the parameters are bit-identical across ranks afterwards (DDP's promise).
4. pretrain — a short GMML pretraining on Fashion-MNIST through the package's real CLI (`python -m gmml_fast.train
   pretrain`), in a subprocess, from the folder given by --fmnist (a GPU machine may have no network), with the k-NN
   read-out, losses and wall time of every epoch.

It writes OUT/gpu.json (every measurement and the machine's facts) and OUT/gpu.md (the tables) after every part, so
that a run cut short still leaves what it measured ("complete": false). It never overwrites an existing gpu.json or
gpu.md unless --overwrite. The parts run in the order eager throughput, ddp, pretrain, compiled throughput, so that the
least predictable cost (compilation) comes last; a part that no longer fits the --budget_s left is recorded as skipped.

Without a CUDA device it stops at once, unless --dry_run: then the same code runs on the CPU at toy size (nano_28, two
timed steps, compiled configurations recorded as skipped, no GPU memory to read, DDP over gloo on two CPU processes,
one epoch on 2 % of the images) in about a minute on an idle 2-core CPU, with no budget to cut it short: a check of the
study, not a measurement. `bash benchmarks/gpu_check.sh` runs the CUDA tests and then this study.
"""
# Only the standard library at the top: the checks that can fail (arguments, --fmnist, --out, no CUDA) run before
# torch, fastai and the package are imported, and the DDP workers that re-import this module start quickly.
import argparse, csv, gc, gzip, hashlib, json, os, platform, shutil, signal, socket, struct, subprocess, sys, tempfile, time, traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

# `gmml_fast` and `benchmarks` are imported as installed packages (`pip install -e .`), or, with `python -m benchmarks.gpu`
# from the repository root, from this tree without an install; the DDP workers (spawned) start with this process's
# sys.path, so they import the same code.
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARTS = ('throughput', 'memory', 'ddp', 'pretrain')
METHODS = ('gmml', 'mae', 'ce')
PRECISIONS = ('32', 'bf16')
COMPILES = (False, True, 'reduce-overhead')      # eager, compiled, compiled and replayed as CUDA graphs
COMPILE_LABELS = {False: 'eager', True: 'compiled', 'reduce-overhead': 'CUDA graphs'}
IDX_STEMS = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')

# The sizes of the real study and of its CPU dry run. GPU: 20 warm-up + 50 timed steps at bs 256 per configuration keeps
# the 6 eager configurations to about a minute, plus the compilations (compiled, then CUDA graphs, while the budget
# lasts). Dry run: just enough to pass through every path.
SIZES = {
    'gpu': dict(arch='tiny_32', size=32, bs=256, warmup=20, steps=50, ddp_arch='tiny_32', ddp_depth=None, ddp_bs=256,
                ddp_warmup=5, ddp_steps=20, epochs=5, pretrain=dict(arch='tiny_32', depth=0, fraction=1.0, n_valid=2000,
                monitor=2000, precision='bf16'), budget_s=420, eager_s=15, compiled_s=60, ddp_s=60),
    'dry': dict(arch='nano_28', size=28, bs=8, warmup=1, steps=2, ddp_arch='nano_28', ddp_depth=2, ddp_bs=8,
                ddp_warmup=1, ddp_steps=3, epochs=1, pretrain=dict(arch='nano_28', depth=2, fraction=0.02, n_valid=200,
                monitor=200, precision='32', bs=64), budget_s=None, eager_s=0, compiled_s=0, ddp_s=0),
}

def fail(msg: str, code: int = 2):
    "Stop with one line on stderr (the study's only way to refuse to start)."
    print(f"gpu.py: {msg}", file=sys.stderr)
    sys.exit(code)

def _check_importable():
    "`python benchmarks/gpu.py` needs the installed packages; without them, one line that says what to type instead."
    import importlib.util
    missing = [m for m in ('benchmarks', 'gmml_fast') if importlib.util.find_spec(m) is None]
    if missing: fail(f"cannot import {' and '.join(missing)}: run `python -m benchmarks.gpu ...` from the repository root, or install the package (pip install -e .)", 2)

def parse_args(argv=None) -> argparse.Namespace:
    "The command line (see the module docstring); --epochs, --bs and --budget_s default to the GPU or dry-run sizes."
    ap = argparse.ArgumentParser(prog='gpu.py', description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--fmnist', help="folder holding Fashion-MNIST's four IDX files (flat, as Debian's "
                    "/usr/share/datasets/fashion-mnist, or torchvision's ROOT/FashionMNIST/raw); needed by the pretrain part")
    ap.add_argument('--epochs', type=int, help='pretraining epochs (default 5; dry run 1)')
    ap.add_argument('--bs', type=int, help='batch size of the throughput, DDP (per rank) and pretraining runs (default 256; dry run: toy sizes)')
    ap.add_argument('--out', default=str(HERE/'results'), help='folder for gpu.json and gpu.md (default benchmarks/results)')
    ap.add_argument('--parts', default=','.join(PARTS), help=f"comma-separated subset of {','.join(PARTS)} (default: all)")
    ap.add_argument('--budget_s', type=float, help='seconds the study plans to take; parts that no longer fit are skipped (default 420; not enforced in the dry run)')
    ap.add_argument('--runs', help='keep the pretraining run folder under this folder (default: a temporary folder, deleted)')
    ap.add_argument('--dry_run', action='store_true', help='run every part on the CPU at toy size: a check of the study, not a measurement')
    ap.add_argument('--overwrite', action='store_true', help='replace an existing OUT/gpu.json and OUT/gpu.md')
    ap.add_argument('--preflight', action='store_true', help='only check the arguments, --fmnist, --out and the CUDA device, then exit '
                    '(gpu_check.sh does this before the tests, so that a mistake costs no GPU time)')
    return ap.parse_args(argv)

def parse_parts(text: str) -> list:
    "The requested parts, in the study's order; an unknown name stops the study."
    parts = [p.strip() for p in text.split(',') if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts: fail(f"--parts must be a comma-separated subset of {','.join(PARTS)}, got {text!r}")
    return [p for p in PARTS if p in parts]

# ----------------------------------------------------------------------------------------------------------- checks
def _idx_header(path: Path) -> tuple:
    "The (magic, dims) of an IDX file: 16 bytes, so that a wrong or truncated file is caught before any GPU work."
    with (gzip.open if path.suffix == '.gz' else open)(path, 'rb') as f: head = f.read(16)
    magic = struct.unpack('>I', head[:4])[0]
    return magic, struct.unpack(f'>{magic & 0xFF}I', head[4:4 + 4*(magic & 0xFF)])

def check_fmnist(path) -> Path:
    "The folder that holds Fashion-MNIST's four IDX files under --fmnist (itself, or torchvision's FashionMNIST/raw below it), with the expected shapes; else stop with one line naming --fmnist."
    if not path: fail("--fmnist PATH is needed by the pretrain part (a folder holding Fashion-MNIST's IDX files, "
                      "e.g. /usr/share/datasets/fashion-mnist); or leave pretrain out of --parts")
    from gmml_fast.files import idx_file          # the package's own lookup (gzipped or not)
    root = Path(path).expanduser()
    for folder in (root, root/'FashionMNIST'/'raw'):
        files = [idx_file(folder, s) for s in IDX_STEMS]
        if all(files): break
    else: fail(f"--fmnist {path}: no Fashion-MNIST there (expected {', '.join(IDX_STEMS)}, optionally .gz, in it or in "
               f"its FashionMNIST/raw; on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist)")
    want = [(0x803, (60000, 28, 28)), (0x801, (60000,)), (0x803, (10000, 28, 28)), (0x801, (10000,))]
    for f, w in zip(files, want):
        try: got = _idx_header(f)
        except (OSError, EOFError, struct.error) as e: fail(f"--fmnist {path}: {f.name} cannot be read ({e})")
        if got != w: fail(f"--fmnist {path}: {f.name} is not Fashion-MNIST's (IDX header {got[0]:#x} {got[1]}, expected {w[0]:#x} {w[1]})")
    return folder.resolve()

def check_out(out: Path, overwrite: bool):
    "Refuse to replace results someone saved (a committed benchmarks/results/gpu.json, or any other), unless --overwrite."
    old = [p.name for p in (out/'gpu.json', out/'gpu.md') if p.exists()]
    if old and not overwrite:
        fail(f"{out}/{old[0]} exists; pass --overwrite to replace it, or --out another folder (results are never overwritten without asking)")

# ------------------------------------------------------------------------------------------------------ the record
class GPUStudy:
    "The record of one run: the measurements, written to gpu.json and gpu.md after every unit of work."
    def __init__(self, args, parts, sizes, fmnist):
        self.t0, self.out, self.sizes = time.perf_counter(), Path(args.out), sizes
        self.budget_s = args.budget_s if args.budget_s is not None else sizes['budget_s']
        argv = ' '.join(sys.argv[1:]) if args.argv is None else ' '.join(args.argv)
        from benchmarks.stages import invocation
        self.res = dict(study='gpu', dry_run=bool(args.dry_run), complete=False, command=f"{invocation('benchmarks.gpu')} {argv}".strip(),
                        started=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC'), parts=parts,
                        budget_s=self.budget_s, fmnist=None if fmnist is None else str(fmnist), **git_facts(), machine=machine_facts(args.dry_run),
                        settings={k: v for k, v in sizes.items() if not k.endswith('_s')})
        self.configs = []            # the throughput/memory configurations timed so far
        for p in parts: self.res[p] = dict(status='not run yet')

    def left(self) -> float:
        "Seconds left of the planned budget; unlimited in the dry run, a check of every path that a slow, shared CPU must not cut short."
        if self.res['dry_run']: return float('inf')
        return self.budget_s - (time.perf_counter() - self.t0)

    def limit(self, share: float, floor: float) -> float:
        "The hard time limit of a subprocess part: what the budget leaves (at most `share` of it, at least `floor` s); 150 s in the dry run."
        if self.res['dry_run']: return 150.0
        return max(floor, min(self.left() - 10, share*self.budget_s))

    def save(self, final: bool = False):
        "Write gpu.json and gpu.md as they stand (atomically: a run killed mid-write leaves the previous version)."
        self.res['minutes'] = round((time.perf_counter() - self.t0)/60, 2)
        if final: self.res['complete'] = not any(_incomplete(self.res[p]) for p in self.res['parts'])
        self.out.mkdir(parents=True, exist_ok=True)
        for name, text in (('gpu.json', json.dumps(self.res, indent=1) + '\n'), ('gpu.md', render_md(self.res))):
            tmp = self.out/f'.{name}.tmp'
            tmp.write_text(text); tmp.replace(self.out/name)

def _incomplete(part) -> bool:
    "Whether a part (or one of its configurations) failed, was cut by the budget, or never ran."
    rows = part.get('configs', [])
    return part.get('status') != 'ok' or any(r['status'] not in ('ok', 'skipped (dry run)') for r in rows)

def _error(e: BaseException) -> dict:
    "One line for the table and the last lines of the traceback for the JSON."
    return dict(status='error', error=f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
                traceback=traceback.format_exc().strip().splitlines()[-12:])

def git_facts() -> dict:
    "The commit the study ran at and whether the working tree had changes (the device runs a copy of the tree): stages.git_state."
    from benchmarks.stages import git_state
    g = git_state(short=False)
    return dict(git_commit=g['commit'], git_dirty=g['dirty'])

def machine_facts(dry_run: bool) -> dict:
    "Versions and the device: what a reader needs to compare these numbers with others."
    import torch
    from benchmarks.stages import machine
    m = dict(machine(), platform=platform.platform(), cpus=os.cpu_count(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
             float32_matmul_precision=torch.get_float32_matmul_precision(), device='cpu (dry run)' if dry_run else None)
    for mod in ('fastai', 'timm'):
        try: m[mod] = __import__(mod).__version__
        except Exception as e: m[mod] = f'unavailable ({type(e).__name__})'
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        m.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(), gpu_memory_gib=round(p.total_memory/2**30, 1),
                 gpu_capability=f'{p.major}.{p.minor}')
        try: m['driver'] = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                                          capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError): m['driver'] = None
        if not dry_run: m['device'] = m['gpu']
    return m

# ------------------------------------------------------------------------------------- 1-2. throughput and memory
def device_work_per_step(learn, sync, steps: int = 3) -> dict:
    "What one training step asks of the device, from `torch.profiler` over `steps` steps (after one untimed step): the launching ATen operations, host syncs and literals (`gmml_fast.step.count_events`) and, on a GPU, the kernels the CUDA profiler saw run (kernels, copies and fills) and the host's launch calls."
    import torch
    from torch.profiler import profile, ProfilerActivity
    from gmml_fast.step import count_events
    from benchmarks.measure import Timing
    cuda = next(learn.model.parameters()).is_cuda
    timer = Timing(warmup=1, stop_after=steps, sync=sync)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[timer])
    ev = prof.events()
    per = lambda n: round(n/(steps + 1), 1)           # the profiled window: the untimed step and the counted ones
    c = count_events(ev)
    r = dict(aten_launches=per(c['launches']), host_syncs=per(c['syncs']), literals=per(c['literals']))
    if cuda:
        r['cuda_kernels'] = per(sum(e.device_type == torch.autograd.DeviceType.CUDA for e in ev))
        r['cuda_launch_calls'] = per(sum(e.name in ('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC', 'cudaGraphLaunch')
                                         for e in ev))
    return r

def time_config(method: str, precision: str, compile: bool, sz: dict, bs: int, device) -> dict:
    "Images/s, step time, losses and peak memory of `method`'s training step in one precision, eager or compiled."
    import torch
    from gmml_fast.learner import gmml_learner, mae_learner, finetune_learner
    from benchmarks.measure import Timing, synthetic_dls
    cuda = device.type == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if compile: torch._dynamo.reset()   # a fresh model each time: stale guards would count towards dynamo's recompile limit
    torch.manual_seed(0)
    learn = dls = None
    try:
        t_build = time.perf_counter()
        dls = synthetic_dls(bs*(sz['warmup'] + sz['steps'] + 6), sz['size'], bs, method == 'ce', device)   # one epoch: every timed step, then 1 + 3 profiled ones
        build = dict(gmml=gmml_learner, mae=mae_learner, ce=finetune_learner)[method]
        learn = build(dls, arch=sz['arch'], precision=precision, compile=compile, seed=0)
        build_s = time.perf_counter() - t_build
        timer = Timing(warmup=sz['warmup'], stop_after=sz['steps'], sync=sync)
        if cuda:
            sync(); torch.cuda.reset_peak_memory_stats()
            resident = torch.cuda.memory_allocated()     # the synthetic images (and the model, if already moved)
        with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[timer])
        dt = timer.window_s()
        losses = [float(v) for v in timer.losses]
        r = dict(method=method, precision=precision, compile=compile, status='ok', arch=sz['arch'], img_size=sz['size'], bs=bs,
                 warmup_steps=sz['warmup'], timed_steps=sz['steps'], images_per_s=round(sz['steps']*bs/dt, 1),
                 step_ms=round(1000*dt/sz['steps'], 3), build_s=round(build_s, 2), warmup_s=round(timer.window_start - timer.t_fit, 2),
                 loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4), finite=all(v == v and abs(v) != float('inf') for v in losses))
        if cuda: r.update(peak_memory_mib=round(torch.cuda.max_memory_allocated()/2**20, 1), resident_mib=round(resident/2**20, 1))
        else: r.update(peak_memory_mib=None, resident_mib=None)
        try: r['per_step'] = device_work_per_step(learn, sync)      # after the memory reading: the profiler allocates too
        except Exception as e: r['per_step'] = _error(e)
        return r
    finally:
        del learn, dls
        gc.collect()
        if cuda: torch.cuda.empty_cache()

def run_matrix(study: GPUStudy, compiled, device, bs: int):
    """Time every method × precision with compile off (first pass), on, or on with CUDA graphs (`compiled`, one of
    COMPILES; the last passes), each configuration on its own."""
    sz, dry = study.sizes, study.res['dry_run']
    rows = study.configs
    need = sz['compiled_s'] if compiled else sz['eager_s']
    for method in METHODS:
        for precision in PRECISIONS:
            key = dict(method=method, precision=precision, compile=compiled)
            t = time.perf_counter()
            if compiled and dry: r = dict(key, status='skipped (dry run)')
            elif study.left() < need: r = dict(key, status='skipped (time budget)', left_s=round(study.left(), 1))
            else:
                try: r = time_config(method, precision, compiled, sz, bs, device)
                except Exception as e: r = dict(key, **_error(e))
                r['config_s'] = round(time.perf_counter() - t, 1)    # build + warm-up + timed steps: what the budget pays
            rows.append(r)
            print(f"[throughput] {method:4s} {precision:4s} {COMPILE_LABELS[compiled]:11s} {r['status']}"
                  + (f": {r['images_per_s']:.0f} images/s, peak {r['peak_memory_mib']} MiB" if r['status'] == 'ok' else f" {r.get('error', '')}"),
                  flush=True)
            publish_matrix(study)
            study.save()

def step_ratios(rows: list) -> list:
    "GMML/CE and MAE/CE step-time ratios for each precision and compile setting both were timed in (same batch size)."
    ok = {(r['method'], r['precision'], r['compile']): r for r in rows if r['status'] == 'ok'}
    out = []
    for precision in PRECISIONS:
        for compiled in COMPILES:
            ce = ok.get(('ce', precision, compiled))
            if ce is None: continue
            rat = {f'{m}_vs_ce': round(ok[(m, precision, compiled)]['step_ms']/ce['step_ms'], 3)
                   for m in ('gmml', 'mae') if (m, precision, compiled) in ok}
            if rat: out.append(dict(precision=precision, compile=compiled, ce_step_ms=ce['step_ms'], **rat))
    return out

def publish_matrix(study: GPUStudy):
    "Copy the configurations timed so far into the throughput and memory parts that were asked for."
    rows = sorted(study.configs, key=lambda r: (METHODS.index(r['method']), PRECISIONS.index(r['precision']),
                                                COMPILES.index(r['compile'])))
    done = len(rows) == len(METHODS)*len(PRECISIONS)*len(COMPILES)
    status = 'ok' if done and not any(r['status'] == 'error' for r in rows) else ('error' if done else 'running')
    if 'throughput' in study.res['parts']:
        study.res['throughput'] = dict(status=status, configs=rows, ratios=step_ratios(rows),
                                       note='images/s of training steps after the warm-up steps (compilation excluded), '
                                            'synthetic uint8 images on the device, the builders\' defaults (augmentation on)')
    if 'memory' in study.res['parts']:
        keys = ('method', 'precision', 'compile', 'status', 'peak_memory_mib', 'resident_mib', 'bs')
        study.res['memory'] = dict(status=status, configs=[{k: r[k] for k in keys if k in r} for r in rows],
                                   note='torch.cuda.max_memory_allocated over the fit, reset per configuration; resident: '
                                        'allocated before the fit (the synthetic images)')

# ------------------------------------------------------------------------------------------------------------ 3. ddp
def free_port() -> int:
    "A TCP port nobody listens on now, for the process group's rendezvous."
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def smooth_images(n: int, size: int, generator):
    "`n` random smooth 3-channel images (bilinear upsampling of 4×4 noise): structure a reconstruction can learn in a few steps, unlike white noise."
    import torch
    import torch.nn.functional as F
    return F.interpolate(torch.randn(n, 3, 4, 4, generator=generator), size=(size, size), mode='bilinear', align_corners=False)

def ddp_worker(rank: int, world: int, backend: str, on_cuda: bool, port: int, cfg: dict, tmp: str):
    "One rank of the DDP run: GMMLModel in DistributedDataParallel, gmml_corrupt, MaskedL1Loss, AdamW; rank 0 writes what all ranks measured to `tmp`/ddp.json."
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from gmml_fast.encoder import create_encoder
    from gmml_fast.gmml import GMMLModel
    from gmml_fast.corruption import gmml_corrupt
    from gmml_fast.losses import MaskedL1Loss
    from gmml_fast.rng import rng_key
    if on_cuda: dev = torch.device(f'cuda:{rank}' if backend == 'nccl' else 'cuda:0'); torch.cuda.set_device(dev)
    else: dev = torch.device('cpu'); torch.set_num_threads(1)   # the ranks share the cores (toy sizes: one thread each is enough)
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    dist.init_process_group(backend, init_method='env://', rank=rank, world_size=world, timeout=timedelta(seconds=120))
    try:
        torch.manual_seed(0)                       # the same initial weights everywhere (DDP also broadcasts rank 0's)
        kw = {} if cfg['depth'] is None else dict(depth=cfg['depth'])
        model = GMMLModel(create_encoder(cfg['arch'], img_size=cfg['size'], in_chans=3, **kw)).to(dev)
        ddp = DDP(model, device_ids=[dev.index] if on_cuda else None)
        opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3, weight_decay=0.05)
        loss_fn = MaskedL1Loss()
        bs, n_steps = cfg['bs'], cfg['warmup'] + cfg['steps']
        # this rank's shard: images no other rank sees (seeded by rank), on the rank's device
        data = smooth_images(bs*min(n_steps, 8), cfg['size'], torch.Generator().manual_seed(1000 + rank)).to(dev)
        losses, t0 = [], None
        for step in range(n_steps):
            if step == cfg['warmup']: sync(); dist.barrier(); t0 = time.perf_counter()
            i = (step*bs) % len(data)
            x = data[i:i + bs]
            xc, mask = gmml_corrupt(x, 'gmml', key=rng_key(seed=100_003*rank + step, device=dev))
            loss = loss_fn(ddp(xc), x, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()                        # DDP all-reduces (averages) the gradients here
            opt.step()
            losses.append(loss.detach())
        sync()
        elapsed = time.perf_counter() - t0
        # gloo handles CUDA tensors only in all_reduce/broadcast; the comparisons below travel as CPU objects
        params = [p.detach().cpu() for p in model.parameters()]
        digest = hashlib.sha256(b''.join(p.contiguous().view(-1).view(torch.uint8).numpy().tobytes() for p in params)).hexdigest()
        sums = [float(p.double().sum()) for p in params]
        mine = dict(rank=rank, device=str(dev), device_name=torch.cuda.get_device_name(dev) if on_cuda else 'cpu', elapsed_s=elapsed,
                    losses=[float(v) for v in losses], digest=digest, sums=sums)
        gathered = [None]*world
        dist.all_gather_object(gathered, mine)
        if rank == 0:
            same = all(g['digest'] == gathered[0]['digest'] for g in gathered)
            close = all(all(abs(a - b) <= 1e-6*max(1.0, abs(a)) for a, b in zip(g['sums'], gathered[0]['sums'])) for g in gathered)
            slowest = max(g['elapsed_s'] for g in gathered)
            rec = dict(status='ok', backend=backend, world_size=world, devices=[g['device'] for g in gathered],
                       device_names=[g['device_name'] for g in gathered], arch=cfg['arch'], depth=cfg['depth'] or 'preset',
                       img_size=cfg['size'], bs_per_rank=bs, warmup_steps=cfg['warmup'], timed_steps=cfg['steps'],
                       images_per_s=round(world*bs*cfg['steps']/slowest, 1),
                       loss_first=[round(g['losses'][0], 4) for g in gathered], loss_last=[round(g['losses'][-1], 4) for g in gathered],
                       shards_differ=len({round(g['losses'][0], 6) for g in gathered}) == world,
                       params_identical=same, params_allclose=close, param_digest=gathered[0]['digest'][:16],
                       n_param_tensors=len(sums))
            Path(tmp, 'ddp.json').write_text(json.dumps(rec))
        dist.barrier()
    finally:
        dist.destroy_process_group()

def run_ddp(study: GPUStudy, bs: int) -> dict:
    "Two ranks of DDP GMML training: NCCL on two GPUs, else gloo with both ranks on cuda:0 (or, in the dry run, on the CPU)."
    import torch
    import torch.multiprocessing as mp
    sz, dry = study.sizes, study.res['dry_run']
    on_cuda = not dry
    backend = 'nccl' if on_cuda and torch.cuda.device_count() >= 2 else 'gloo'
    cfg = dict(arch=sz['ddp_arch'], depth=sz['ddp_depth'], size=sz['size'], bs=bs, warmup=sz['ddp_warmup'], steps=sz['ddp_steps'])
    world, limit = 2, study.limit(1.0, 30)
    planned = dict(backend=backend, world_size=world,
                   devices=[f'cuda:{r}' if backend == 'nccl' else 'cuda:0' for r in range(world)] if on_cuda else ['cpu']*world)
    with tempfile.TemporaryDirectory() as tmp:
        # spawn, not fork: CUDA cannot be used in a forked child once the parent has touched it
        ctx = mp.start_processes(ddp_worker, args=(world, backend, on_cuda, free_port(), cfg, tmp), nprocs=world,
                                 join=False, start_method='spawn')
        t0 = time.perf_counter()
        try:
            while not ctx.join(timeout=1):       # raises (with the rank's traceback) if a rank fails
                if time.perf_counter() - t0 > limit:
                    raise TimeoutError(f"the {world} ranks had not finished after {limit:.0f} s (the part's time limit)")
            rec = json.loads(Path(tmp, 'ddp.json').read_text())
        except Exception as e:
            # e.g. gloo refusing CUDA tensors on this build: what was tried is part of the result
            return dict(planned, **_error(e))
        finally:
            for p in ctx.processes:              # a timeout, or a SIGTERM from gpu_check.sh's timeout: no orphaned ranks
                if p.is_alive(): p.terminate()
    if backend == 'gloo' and on_cuda: rec['note'] = 'one GPU: both ranks on cuda:0 over gloo (NCCL refuses two ranks on one device)'
    return rec

# -------------------------------------------------------------------------------------------------------- 4. pretrain
def _torchvision_root(folder: Path, tmp: Path) -> Path:
    "A --data_root for the CLI that holds exactly `folder`'s files: its grandparent if `folder` is already ROOT/FashionMNIST/raw, else a temporary ROOT/FashionMNIST/raw of links to them (so no other copy of the data set can be read instead)."
    if folder.parts[-2:] == ('FashionMNIST', 'raw'): return folder.parent.parent
    raw = tmp/'data'/'FashionMNIST'/'raw'
    raw.mkdir(parents=True)
    from gmml_fast.files import idx_file
    for stem in IDX_STEMS:
        f = idx_file(folder, stem)
        (raw/f.name).symlink_to(f.resolve())
    return tmp/'data'

def _seconds(mmss: str):
    "fastai's 'time' column (mm:ss or h:mm:ss) in seconds; None if it is not one."
    try:
        s = 0
        for part in mmss.split(':'): s = 60*s + int(part)
        return s
    except (ValueError, AttributeError): return None

def _float(v):
    "A history.csv value as a float (None where fastai wrote nothing or 'None')."
    try: return float(v)
    except (TypeError, ValueError): return None

def run_pretrain(study: GPUStudy, fmnist: Path, epochs: int, bs, runs) -> dict:
    "GMML pretraining through the CLI in a subprocess; history.csv is polled so each epoch's wall time is when its line appears."
    p = study.sizes['pretrain']
    bs = bs or p.get('bs') or study.sizes['bs']
    limit = study.limit(0.5, 20)          # at most half the budget: leave room for the compiled configurations after it
    tmp = Path(tempfile.mkdtemp(prefix='gpu_study_'))
    try:
        out = Path(runs) if runs else tmp/'runs'
        out.mkdir(parents=True, exist_ok=True)
        root = _torchvision_root(fmnist, tmp)
        cmd = [sys.executable, '-m', 'gmml_fast.train', 'pretrain', '--data', 'fashion_mnist', '--data_root', str(root),
               '--epochs', str(epochs), '--bs', str(bs), '--out', str(out), '--precision', p['precision'], '--monitor', str(p['monitor']),
               '--arch', p['arch'], '--depth', str(p['depth']), '--fraction', str(p['fraction']), '--n_valid', str(p['n_valid']),
               '--seed', '0']
        env = dict(os.environ, MPLBACKEND='Agg')      # `-m` from cwd=REPO: the CLI of this tree's gmml_fast, installed or not
        if study.res['dry_run']:      # on the CPU even on a GPU machine, one thread as the study's own process
            env.update(CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
        before = set(out.iterdir())
        log = tmp/'cli.log'
        t_start = time.perf_counter()
        with open(log, 'w') as lf:
            proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, cwd=REPO, env=env)
            run_dir, t_fit, arrivals, timed_out = None, None, [], False
            try:
                while True:
                    done = proc.poll() is not None
                    if run_dir is None:
                        new = [d for d in out.iterdir() if d not in before and d.is_dir()]
                        run_dir = new[0] if new else None
                    if run_dir is not None:
                        if t_fit is None and (run_dir/'config.json').exists(): t_fit = time.perf_counter()   # written just before the fit
                        h = run_dir/'history.csv'
                        n = max(0, len(h.read_text().splitlines()) - 1) if h.exists() else 0
                        arrivals += [time.perf_counter()]*(n - len(arrivals))
                    if done: break
                    if time.perf_counter() - t_start > limit: timed_out = True; break
                    time.sleep(0.1)
            finally:
                if proc.poll() is None: proc.kill(); proc.wait()   # the time limit, or a SIGTERM: the CLI must not outlive the study
        wall = time.perf_counter() - t_start
        tail = log.read_text(errors='replace').strip().splitlines()[-15:]
        rows = []
        if run_dir is not None and (run_dir/'history.csv').exists():
            with open(run_dir/'history.csv') as f: rows = list(csv.DictReader(f))
        epochs_rec, prev = [], t_fit
        for i, row in enumerate(rows):
            t = arrivals[i] if i < len(arrivals) else None
            epochs_rec.append(dict(epoch=int(row['epoch']) + 1, train_loss=_float(row.get('train_loss')), valid_loss=_float(row.get('valid_loss')),
                                   knn=None if _float(row.get('knn')) is None else round(_float(row.get('knn')), 4), time_s=_seconds(row.get('time')),
                                   wall_s=None if t is None or prev is None else round(t - prev, 2)))
            prev = t
        rec = dict(status='ok', command=' '.join(['python'] + cmd[1:]).replace(str(tmp), '$TMP'), data=str(fmnist), epochs_asked=epochs,
                   bs=bs, **{k: v for k, v in p.items() if k != 'bs'}, returncode=proc.returncode, wall_s=round(wall, 1),
                   startup_s=None if t_fit is None else round(t_fit - t_start, 1), epochs=epochs_rec,
                   knn_per_epoch=[e['knn'] for e in epochs_rec], run_folder=str(run_dir) if runs and run_dir else None,
                   note="wall_s: between history.csv lines (training, validation and the k-NN monitor); time_s: fastai's "
                        "'time' column; startup_s: start of the CLI to its fit (imports, data, first validation)")
        if timed_out: rec.update(status='error', error=f"timed out after {limit:.0f} s (the part's time limit) with {len(rows)} of {epochs} epochs", log_tail=tail)
        elif proc.returncode != 0: rec.update(status='error', error=f"the CLI exited with code {proc.returncode}: {tail[-1] if tail else ''}", log_tail=tail)
        elif len(rows) != epochs: rec.update(status='error', error=f"history.csv has {len(rows)} rows for {epochs} epochs", log_tail=tail)
        return rec
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

# --------------------------------------------------------------------------------------------------------- report
def _cell(v, fmt='{:.0f}'):
    "A table cell: the number, or a dash."
    return '—' if v is None else fmt.format(v)

def render_md(res: dict) -> str:
    "gpu.md: the measurements of gpu.json as tables a reader can take in at a glance."
    m = res['machine']
    md = []
    if res['dry_run']:
        md += ['**CPU dry run, not a measurement**: toy sizes on the CPU, to check that every part of the study runs; '
               'run `bash benchmarks/gpu_check.sh --fmnist PATH` on a GPU machine for the numbers.', '']
    md += ['# GPU study', '',
           f"{m.get('device')}{' ×' + str(m['gpu_count']) if m.get('gpu_count', 0) > 1 else ''}; torch {m['torch']} (CUDA {m['cuda']}, "
           f"cuDNN {m['cudnn']}), fastai {m.get('fastai')}, timm {m.get('timm')}, Python {m['python']}; commit "
           f"{(res.get('git_commit') or '?')[:10]}{' (with local changes)' if res.get('git_dirty') else ''}; {res['started']}; "
           f"{res.get('minutes')} min in all{'' if res['complete'] else ' (incomplete: see the statuses below)'}. "
           f"Command: `{res['command']}`.", '']
    if res.get('interrupted'): md += [f"**Cut short** ({res['interrupted']}): the parts still running or not started have no numbers.", '']
    label = lambda p, c: f"{'fp32' if p == '32' else p} {COMPILE_LABELS[c]}"
    cols = [(p, c) for p in PRECISIONS for c in COMPILES]
    def matrix(rows, key, fmt):
        "One row per method, one column per precision × compile setting; the status where nothing was measured."
        by = {(r['method'], r['precision'], r['compile']): r for r in rows}
        out = ['| method | ' + ' | '.join(label(p, c) for p, c in cols) + ' |', '|---' * (len(cols) + 1) + '|']
        for meth in METHODS:
            cells = []
            for p, c in cols:
                r = by.get((meth, p, c))
                cells.append('not run' if r is None else _cell(r.get(key), fmt) if r['status'] == 'ok' else r['status'])
            out.append(f"| {meth.upper() if meth != 'ce' else 'CE (finetune)'} | " + ' | '.join(cells) + ' |')
        return out
    s = res['settings']
    if 'throughput' in res:
        t = res['throughput']
        md += ['## Training-step throughput (images/s)', '',
               f"`{s['arch']}` at {s['size']} px, batch {t['configs'][0].get('bs', s['bs']) if t.get('configs') else s['bs']}, "
               f"{s['steps']} timed steps after {s['warmup']} warm-up steps (compilation excluded); synthetic images on the device; "
               f"part status: {t['status']}.", '']
        if t.get('configs'):
            md += matrix(t['configs'], 'images_per_s', '{:.0f}') + ['']
            if t.get('ratios'):
                md += ['Step time relative to CE (supervised finetuning step) at the same setting:', '',
                       '| setting | CE step (ms) | GMML / CE | MAE / CE |', '|---|---|---|---|']
                md += [f"| {label(r['precision'], r['compile'])} | {r['ce_step_ms']:.2f} | {_cell(r.get('gmml_vs_ce'), '{:.2f}×')} | "
                       f"{_cell(r.get('mae_vs_ce'), '{:.2f}×')} |" for r in t['ratios']] + ['']
            work = [dict(r, **{k: v for k, v in r.get('per_step', {}).items()}) for r in t['configs']]
            for key, what in (('cuda_kernels', 'kernels the CUDA profiler saw run'), ('cuda_launch_calls', 'the host\'s kernel-launch calls'),
                              ('aten_launches', 'launching ATen operations (`gmml_fast.step.count_events`)')):
                if any(r.get(key) is not None for r in work):
                    md += [f"Per training step, {what}:", ''] + matrix(work, key, '{:.0f}') + ['']
    if 'memory' in res:
        mem = res['memory']
        md += ['## Peak GPU memory (MiB)', '', f"`torch.cuda.max_memory_allocated` over each configuration's fit, reset before it; part status: {mem['status']}.", '']
        if mem.get('configs'): md += matrix(mem['configs'], 'peak_memory_mib', '{:.0f}') + ['']
    if 'ddp' in res:
        d = res['ddp']
        md += ['## Two-process DDP', '']
        if d['status'] == 'ok':
            md += ['| backend | ranks | devices | images/s (both ranks) | loss first → last (per rank) | parameters across ranks |', '|---|---|---|---|---|---|',
                   f"| {d['backend']} | {d['world_size']} | {', '.join(d['devices'])} | {d['images_per_s']:.0f} | "
                   + '; '.join(f"{a} → {b}" for a, b in zip(d['loss_first'], d['loss_last']))
                   + f" | {'bit-identical' if d['params_identical'] else ('allclose, not bit-identical' if d['params_allclose'] else 'DIFFERENT')} |", '',
                   f"`{d['arch']}` (depth {d['depth']}) at {d['img_size']} px, batch {d['bs_per_rank']} per rank, {d['timed_steps']} timed steps "
                   f"after {d['warmup_steps']}; raw torch.distributed + DistributedDataParallel, each rank on its own data shard. "
                   + d.get('note', ''), '']
        else: md += [f"Status: {d['status']}{': ' + d['error'] if d.get('error') else ''}", '']
    if 'pretrain' in res:
        p = res['pretrain']
        md += ['## GMML pretraining on Fashion-MNIST (the CLI)', '']
        if p.get('epochs'):
            md += [f"`{p['arch']}` (depth {p['depth'] or 'preset'}), batch {p['bs']}, precision {p['precision']}, {p['fraction']:.0%} of the "
                   f"training images, k-NN on {p['monitor']} labeled training images; {p['wall_s']} s wall in all "
                   f"({p['startup_s']} s before the fit).", '',
                   '| epoch | train loss | valid loss | k-NN | epoch time (s, fastai) | wall (s) |', '|---|---|---|---|---|---|']
            md += [f"| {e['epoch']} | {_cell(e['train_loss'], '{:.4f}')} | {_cell(e['valid_loss'], '{:.4f}')} | {_cell(e['knn'], '{:.3f}')} | "
                   f"{_cell(e['time_s'])} | {_cell(e['wall_s'], '{:.1f}')} |" for e in p['epochs']] + ['']
        if p['status'] != 'ok': md += [f"Status: {p['status']}{': ' + p['error'] if p.get('error') else ''}", '']
    errs = [(part, r) for part in res['parts'] for r in ([res[part]] + list(res[part].get('configs', []))) if r.get('status') == 'error']
    if res.get('matrix_error'): errs.append(('throughput', res['matrix_error']))
    if errs:
        md += ['## Errors', ''] + [f"- {part}{' ' + label(r['precision'], r['compile']) + ' ' + r['method'] if 'method' in r else ''}: "
                                  f"{r.get('error', '')}" for part, r in errs if part != 'memory'] + ['']
    return '\n'.join(md)

# ----------------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    "Check what can be checked without a GPU, then run the parts asked for, saving after each; 0 if none failed."
    a = parse_args(argv)
    a.argv = argv
    parts = parse_parts(a.parts)
    fmnist = check_fmnist(a.fmnist) if 'pretrain' in parts else None
    check_out(Path(a.out), a.overwrite)
    if a.bs is not None and a.bs < 1: fail(f"--bs must be >= 1, got {a.bs}")
    if a.epochs is not None and a.epochs < 1: fail(f"--epochs must be >= 1, got {a.epochs}")
    _check_importable()
    import torch
    if not a.dry_run and not torch.cuda.is_available():
        fail("no CUDA device (torch.cuda.is_available() is False); run this on a GPU machine, or use --dry_run to check the study on the CPU", 1)
    if a.preflight: return 0
    sizes = SIZES['dry' if a.dry_run else 'gpu']
    # the dry run's toy tensors gain nothing from a second thread, and on a CPU shared with other jobs several threads
    # spin against each other (7x slower measured on 2 busy cores)
    if a.dry_run: torch.set_num_threads(1)
    study = GPUStudy(a, parts, sizes, fmnist)
    device = torch.device('cpu' if a.dry_run else 'cuda')
    bs = a.bs if a.bs and not a.dry_run else sizes['bs']
    study.res['settings']['bs'] = bs
    plan = 'no time budget' if a.dry_run else f'{study.budget_s:.0f} s planned'
    print(f"GPU study{' (CPU dry run)' if a.dry_run else ''}: {', '.join(parts)}; {plan}; writing {study.out}/gpu.{{json,md}}", flush=True)
    study.save()
    matrix = 'throughput' in parts or 'memory' in parts

    def part(name, fn, need_s):
        "Run one part unless fewer than `need_s` seconds of the budget are left; its failure is recorded, not raised."
        if study.left() < need_s:
            study.res[name] = dict(status='skipped (time budget)', left_s=round(study.left(), 1)); study.save(); return
        study.res[name] = dict(status='running'); study.save()
        t = time.perf_counter()
        try: study.res[name] = fn()
        except Exception as e: study.res[name] = _error(e)
        study.res[name]['part_s'] = round(time.perf_counter() - t, 1)
        print(f"[{name}] {study.res[name]['status']} {study.res[name].get('error', '')}", flush=True)
        study.save()

    # gpu_check.sh's `timeout` sends SIGTERM: turn it into an exception, so that the subprocesses are ended and the
    # record says it was cut short
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        if matrix:
            try: run_matrix(study, False, device, bs)
            except Exception as e: study.res['matrix_error'] = _error(e)
        if 'ddp' in parts: part('ddp', lambda: run_ddp(study, a.bs if a.bs and not a.dry_run else sizes['ddp_bs']), sizes['ddp_s'])
        if 'pretrain' in parts:
            part('pretrain', lambda: run_pretrain(study, fmnist, a.epochs or sizes['epochs'], a.bs if not a.dry_run else None, a.runs), 20)
        if matrix:
            for compiled in COMPILES[1:]:
                try: run_matrix(study, compiled, device, bs)
                except Exception as e: study.res['matrix_error'] = _error(e)
            publish_matrix(study)
    except BaseException as e:                   # SIGTERM or Ctrl-C: keep what was measured, marked incomplete
        study.res['interrupted'] = f"{type(e).__name__} {e} after {(time.perf_counter() - study.t0)/60:.1f} min"
        study.save(final=True)
        raise
    study.save(final=True)
    print(render_md(study.res), flush=True)
    failed = [p for p in parts if study.res[p].get('status') == 'error' or any(r['status'] == 'error' for r in study.res[p].get('configs', []))]
    if failed: print(f"gpu.py: failed parts: {', '.join(failed)} (see {study.out}/gpu.json)", file=sys.stderr)
    return 1 if failed or 'matrix_error' in study.res else 0

if __name__ == '__main__': sys.exit(main())

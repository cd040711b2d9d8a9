"""The stages of the benchmark studies, and the folder that keeps them.

A *stage* is one unit of work with a result worth keeping: a pretraining (with its k-NN read-out after every epoch and
its exported encoder), the frozen read-outs of an encoder, one finetune, a throughput run, the memory of one training
step. Each stage is a plain function of a JSON config. `Store.run(kind, config)` names the stage's record by the hash of
its config (the recipe enters as its name, its overrides and its `Recipe.key`), computes it only when no record of that
name exists, and writes it atomically, so an interrupted study continues where it stopped and any study that needs the
same stage (the same pretraining, the same finetune) reads the record another study wrote. Configs never hold a study's
labels ('MAE, more epochs'), only settings, so equal settings always share.

Every stage uses the same data: Fashion-MNIST's training images split once (`heldout`) into queries that no stage trains
on (the held-out images every read-out and every held-out evaluation scores on) and the pool everything else is drawn
from; the test set is scored once per evaluation and never used to choose anything.
"""
from __future__ import annotations
import hashlib, json, os, platform, resource, shlex, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from fastai.callback.core import Callback, CancelValidException, CancelFitException

from gmml_fast.data import stratified_subset, valid_subset, tensor_dls, image_batch_tfms
from gmml_fast.files import load_fashion_mnist, FMNIST_STATS, FMNIST_CLASSES
from gmml_fast.evaluate import embed_images, knn_accuracy, linear_probe_accuracy, KNNMonitor
from gmml_fast.recipe import get_recipe, with_overrides
from benchmarks.measure import Timing, median_seconds, synthetic_dls
from benchmarks.configs import (StageConfig, PretrainStage, FinetuneStage, FrozenStage, ReadoutStage, MemoryStage,
                                ThroughputStage, HostStage)

HERE = Path(__file__).resolve().parent
N_TRAIN = 60000                      # Fashion-MNIST's training images
T0 = time.perf_counter()

def log(msg: str) -> None:
    "Print `msg` with the minutes since the study started."
    print(f"[{(time.perf_counter() - T0)/60:6.2f} min] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------- run metadata
def machine() -> dict:
    "The machine a record was measured on: CPU model, logical CPUs, torch threads, torch version, GPU, Python."
    cpu = platform.processor() or platform.machine()
    try: cpu = next(l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name'))
    except (OSError, StopIteration): pass
    return dict(cpu=cpu, logical_cpus=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
                gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else 'none (CPU only)', python=platform.python_version())

def git_state(short: bool = True) -> dict:
    "The commit the code ran at (None without git) and whether tracked files had changes."
    def git(*a):
        try: return subprocess.run(['git', *a], capture_output=True, text=True, cwd=HERE, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError): return ''
    return dict(commit=git('rev-parse', *(['--short'] if short else []), 'HEAD') or None,
                dirty=bool(git('status', '--porcelain', '--untracked-files=no')))

def invocation(module: str = 'benchmarks.study') -> str:
    "The command that runs `module` as the running program was typed: `python benchmarks/NAME.py` when a file of this folder runs as a script, else `python -m benchmarks.NAME` (the documented form)."
    main = sys.modules.get('__main__')
    f = getattr(main, '__file__', None)
    if getattr(main, '__spec__', None) is None and f and Path(f).resolve().parent == HERE: return f"python benchmarks/{module.rsplit('.', 1)[-1]}.py"
    return f'python -m {module}'

def run_meta(argv=None, module: str = 'benchmarks.study') -> dict:
    "What every record says about its run: the command as typed (without its --note), the git commit and whether the tree had changes, the machine and the date (UTC)."
    argv = list(sys.argv[1:] if argv is None else argv)
    # a --note is kept in the record's `note`, not repeated inside its command
    argv = [a for i, a in enumerate(argv) if not (a == '--note' or a.startswith('--note=') or (i and argv[i - 1] == '--note'))]
    return dict(command=f'{invocation(module)} ' + shlex.join(argv), **git_state(), machine=machine(),
                date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))


# ---------------------------------------------------------------------------------------------------- the stage folder
def _plain(cfg):
    "A config with every recipe (its name and overrides) replaced by the resolved recipe's `Recipe.key`: two spellings of the same settings (`{}` and `{'corruption': 'gmml'}`) are one stage, and a stage's name changes when its recipe's fields do."
    if isinstance(cfg, dict):
        out = {k: _plain(v) for k, v in cfg.items() if not ('recipe' in cfg and k in ('recipe', 'overrides'))}
        if 'recipe' in cfg: out['recipe_key'] = with_overrides(get_recipe(cfg['recipe']), **cfg.get('overrides', {})).key
        return out
    return [_plain(v) for v in cfg] if isinstance(cfg, (list, tuple)) else cfg

def stage_key(kind: str, cfg: dict) -> str:
    "The 12-hex-digit name of a stage: a SHA-256 of its kind and its config (with the recipes' keys)."
    return hashlib.sha256(json.dumps([kind, _plain(cfg)], sort_keys=True).encode()).hexdigest()[:12]

class StageFileError(RuntimeError):
    "A stage record that cannot be read (an empty or corrupt file): the message names the file to delete."

class Store:
    """The finished stages of a state folder. `run(cfg)` returns the record of the stage a typed config (`configs.py`)
    describes: read back when its file exists, else computed by `STAGES[cfg.kind]` and saved atomically
    (`compute=False`: None, and the stage is listed in `missing`). `ran` and `reused` list what this store computed and
    what it read back, and `commands` the commands that computed them, for the study's report and the tests."""
    def __init__(self, root, compute: bool = True):
        self.root, self.compute = Path(root), compute
        self.root.mkdir(parents=True, exist_ok=True)
        self.ran, self.reused, self.missing, self.commands = [], [], [], []

    def path(self, cfg: StageConfig, suffix: str = '.json') -> Path:
        "Where the stage's record (or, with another `suffix`, a file it writes, such as an encoder) lives."
        return self.root/f'{cfg.kind}-{stage_key(cfg.kind, cfg.key_dict())}{suffix}'

    def run(self, cfg: StageConfig):
        "The record of the stage `cfg`: read back, else computed and saved (None when not computing or when its inputs are missing)."
        if not isinstance(cfg, StageConfig): raise TypeError(f"a stage is run from a typed config (benchmarks.configs), got {type(cfg).__name__}")
        p = self.path(cfg)
        if p.exists():
            try: rec = json.loads(p.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise StageFileError(f"the stage record {p} cannot be read ({type(e).__name__}); delete it and run the study again to recompute it") from None
            self.reused.append(p.name); self.commands.append(rec.get('stage', {}).get('command'))
            return rec
        if not self.compute:
            self.missing.append(p.name)
            return None
        t0 = time.perf_counter()
        rec = STAGES[cfg.kind](cfg, self)
        if rec is None: return None                     # a stage whose own inputs are missing (report mode)
        key = cfg.key_dict()
        rec = dict(rec, stage=dict(kind=cfg.kind, key=stage_key(cfg.kind, key), config=key, minutes=round((time.perf_counter() - t0)/60, 3),
                                   **run_meta()))
        tmp = p.with_suffix(f'.{os.getpid()}.tmp')         # one temporary name per process: two studies may share a folder
        tmp.write_text(json.dumps(rec, indent=1)); tmp.replace(p)      # never a half-written record
        self.ran.append(p.name); self.commands.append(rec['stage']['command'])
        return rec


# ---------------------------------------------------------------------------------------------------- data
def heldout(n_query: int) -> tuple[torch.Tensor, torch.Tensor]:
    "The one held-out split of every study: (queries, pool), indices into the training images. The queries are the first `n_query` of one fixed permutation (so a smaller set is part of a larger one); no stage trains on them."
    p = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(0))
    return p[:n_query], p[n_query:]

def pool_subset(y: torch.Tensor, pool: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    "A class-balanced, seeded subset of about `n` images of the pool (all of it when `n` covers it)."
    if n >= len(pool): return pool
    return pool[stratified_subset(y[pool], n/len(pool), seed)]

def test_subset(n_test: int | None):
    "The test images a study evaluates on: all 10,000, or a class-balanced subset of `n_test` (the same for every stage)."
    xt, yt = load_fashion_mnist('test')
    if n_test: keep = valid_subset(yt, n_test, 0); xt, yt = xt[keep], yt[keep]
    return xt, yt

def tfms(size: int):
    "The batch transforms of every study's loaders: to float, zero-pad to `size` px, normalise with Fashion-MNIST's statistics."
    return image_batch_tfms(FMNIST_STATS, size, 'pad', 1)

def normalised(x: torch.Tensor, size: int) -> torch.Tensor:
    "Raw images `x` (uint8, N×1×28×28) as the models see them: through the loaders' batch transforms at `size` px."
    return tensor_dls(x, x[:1], bs=len(x), shuffle=False, drop_last=False, after_batch=tfms(size)).train.one_batch()[0]

def features(encoder: nn.Module, x: torch.Tensor, size: int) -> torch.Tensor:
    "Frozen features of raw images `x` (uint8, N×1×28×28): through the loaders' batch transforms at `size` px, then the library's `embed_images`."
    dl = tensor_dls(x, x[:1], bs=500, shuffle=False, drop_last=False, after_batch=tfms(size)).train
    return torch.cat([embed_images(encoder, xb) for (xb,) in dl])

def make_encoder(cfg, seed: int = 0):
    "A randomly initialised encoder of a config's `arch` and `depth` (1 channel), seeded."
    from gmml_fast.encoder import create_encoder
    torch.manual_seed(seed)
    return create_encoder(cfg.arch, in_chans=1, depth=cfg.depth)

def load_vit(cfg, path):
    "An encoder of a config's `arch` and `depth` with the weights exported to `path`."
    from gmml_fast.encoder import load_encoder
    enc = make_encoder(cfg)
    load_encoder(enc, path)
    return enc


# ---------------------------------------------------------------------------------------------------- callbacks
class SkipValidation(Callback):
    "Skip fastai's per-epoch validation: the finetunes evaluate once, after training."
    def before_validate(self): raise CancelValidException()

class Curve(Callback):
    "After every epoch, the library `KNNMonitor`'s read-out with the training minutes so far."
    order = 101
    def __init__(self, monitor, timing, first): self.mon, self.timing, self.curve = monitor, timing, [first]
    def after_epoch(self):
        self.curve.append(dict(epoch=self.epoch + 1, train_minutes=round(self.timing.train_s/60, 3), knn_accuracy=round(self.mon.value, 4)))
        log(f"  epoch {self.epoch + 1}: k-NN {self.mon.value:.4f} on held-out training images after {self.timing.train_s/60:.1f} min of training")


# ---------------------------------------------------------------------------------------------------- pretraining
def pretrain(cfg: PretrainStage, store: Store) -> dict:
    """Pretrain GMML, MAE or SimMIM (`cfg.method`, its `recipe` + `overrides`) on `images` of the pool for `epochs`;
    read the encoder out with k-NN (bank: `n_bank` pool images, queries: the held-out images) before training and after
    every epoch, with a linear probe at the end; export the encoder next to the record."""
    from fastai.torch_core import set_seed
    from gmml_fast.learner import gmml_learner, mae_learner, simmim_learner
    x, y = load_fashion_mnist('train')
    q, pool = heldout(cfg.n_query)
    bank, p = pool[:cfg.n_bank], pool_subset(y, pool, cfg.images, 0)
    set_seed(cfg.seed)
    dls = tensor_dls(x[p], x[q[:128]], bs=cfg.bs, after_batch=tfms(cfg.size))
    build = dict(gmml=gmml_learner, mae=mae_learner, simmim=simmim_learner)[cfg.method]
    kw = dict(decoder=cfg.decoder) if cfg.decoder else {}
    learn = build(dls, cfg.arch, recipe=cfg.recipe, encoder_kwargs=dict(depth=cfg.depth), seed=cfg.seed, **kw, **cfg.overrides)
    enc = learn.model.encoder
    fb, fq = features(enc, x[bank], cfg.size), features(enc, x[q], cfg.size)
    mon, timing = KNNMonitor((x[bank], y[bank]), (x[q], y[q])), Timing()
    curve = Curve(mon, timing, dict(epoch=0, train_minutes=0.0, knn_accuracy=round(knn_accuracy(fb, y[bank], fq, y[q]), 4)))
    log(f"pretraining {cfg.method.upper()} ({cfg.recipe}{' + ' + json.dumps(cfg.overrides) if cfg.overrides else ''}) "
        f"{cfg.arch}/{cfg.depth} on {len(p):,} unlabeled images, {cfg.epochs} epochs of {len(dls.train)} steps")
    with learn.no_bar(), learn.no_logging(): before = float(learn.validate()[0])   # the reconstruction loss on held-out images
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe(cfg.epochs, cbs=[mon, timing, curve])
    minutes = (time.perf_counter() - t0)/60
    fb, fq = features(enc, x[bank], cfg.size), features(enc, x[q], cfg.size)
    path = store.path(cfg, '.safetensors')
    if path.exists(): path.unlink()                    # left by an interrupted run of this very stage
    learn.export_encoder(path)
    rec = dict(method=cfg.method, images=len(p), epochs=cfg.epochs, steps=len(learn.recorder.losses), bs=cfg.bs,
               lr=learn.recipe.peak_lr(cfg.bs), train_loss_first=round(float(learn.recorder.losses[0]), 4),
               train_loss_last_smoothed=round(float(learn.recorder.smooth_loss.value), 4),
               valid_loss_before=round(before, 4), valid_loss=round(float(learn.recorder.values[-1][1]), 4), train_minutes=round(timing.train_s/60, 2),
               images_per_s=round(len(learn.recorder.losses)*cfg.bs/timing.train_s, 1), step_ms=timing.step_ms(),
               minutes=round(minutes, 2), knn_curve=curve.curve, knn_accuracy=curve.curve[-1]['knn_accuracy'],
               linear_accuracy=round(linear_probe_accuracy(fb, y[bank], fq, y[q]), 4),
               encoder_params=sum(v.numel() for v in enc.parameters()),
               decoder_params=sum(v.numel() for n, v in learn.model.named_parameters() if not n.startswith('encoder.')),
               encoder=path.name)
    if cfg.method == 'gmml':
        from gmml_fast.corruption import gmml_corrupt
        from gmml_fast.masking import mask_coverage
        r = learn.recipe
        rec['decoder_hidden'] = learn.model.decoder.hidden_dim
        rec['coverage'] = round(float(mask_coverage(gmml_corrupt(dls.valid.one_batch()[0], r.corruption, ratio=r.ratio, align=r.align, seed=123)[1]).mean()), 4)
    log(f"  {rec['images_per_s']} img/s, {rec['train_minutes']} min of training, k-NN {rec['knn_accuracy']:.4f}, linear {rec['linear_accuracy']:.4f}")
    return rec

def encoder_file(store: Store, pre_cfg: PretrainStage | None):
    "The exported encoder of a pretraining stage (computed if needed; None for random init or, in report mode, when missing)."
    if pre_cfg is None: return None
    rec = store.run(pre_cfg)
    return None if rec is None else store.root/rec['encoder']


def readout(cfg: ReadoutStage, store: Store) -> dict:
    "The held-out read-out of a randomly initialised encoder (`arch`, `depth`, `seed`): k-NN and linear probe, bank -> queries, as `pretrain` reads out its encoders."
    x, y = load_fashion_mnist('train')
    q, pool = heldout(cfg.n_query)
    bank, enc = pool[:cfg.n_bank], make_encoder(cfg, cfg.seed)
    fb, fq = features(enc, x[bank], cfg.size), features(enc, x[q], cfg.size)
    return dict(knn_accuracy=round(knn_accuracy(fb, y[bank], fq, y[q]), 4), linear_accuracy=round(linear_probe_accuracy(fb, y[bank], fq, y[q]), 4))


# ---------------------------------------------------------------------------------------------------- frozen read-outs
def frozen(cfg: FrozenStage, store: Store) -> dict | None:
    "k-NN (k = 20, cosine) and linear-probe test accuracy of an encoder's frozen features (`pretrain`, or random init when None) for every labeled subset (`fractions` × `seeds`)."
    path = encoder_file(store, cfg.pretrain)
    if cfg.pretrain is not None and path is None: return None
    enc = make_encoder(cfg) if path is None else load_vit(cfg, path)
    x, y = load_fashion_mnist('train')
    xt, yt = test_subset(cfg.n_test)
    _, pool = heldout(cfg.n_query)
    t0 = time.perf_counter()
    subsets = {(f, s): pool_subset(y, pool, round(f*N_TRAIN), s) for f in cfg.fractions for s in cfg.seeds}
    used = torch.cat(list(subsets.values())).unique()
    ft = torch.zeros(len(y), enc.embed_dim)
    ft[used], fte = features(enc, x[used], cfg.size), features(enc, xt, cfg.size)
    emb_s, recs = time.perf_counter() - t0, []
    for (f, s), idx in subsets.items():
        for protocol, fn in (('knn', knn_accuracy), ('linear', linear_probe_accuracy)):
            t1 = time.perf_counter()
            acc = fn(ft[idx], y[idx], fte, yt)
            recs.append(dict(protocol=protocol, label_fraction=f, seed=s, test_accuracy=round(acc, 4), test_images=len(yt),
                             train_images=len(idx), minutes=round((time.perf_counter() - t1)/60, 3)))
        log(f"  frozen {f:.0%} seed {s}: k-NN {recs[-2]['test_accuracy']:.4f}, linear {recs[-1]['test_accuracy']:.4f}")
    return dict(records=recs, embed_minutes=round(emb_s/60, 2))


# ---------------------------------------------------------------------------------------------------- finetuning
def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))

class BasicBlock(nn.Module):
    "A ResNet basic block: two 3×3 convolutions and a (projected when the shape changes) shortcut."
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.body = _block(cin, cout, stride)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x): return F.relu(self.body(x) + self.short(x))

def small_resnet(n_cls=10, widths=(16, 32, 64), in_ch=1):
    "The CNN baseline for 28-32 px images: a 3×3 stem, three stages of two basic blocks (stride 1, 2, 2), global average pooling."
    layers, cin = [nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)], widths[0]
    for i, w in enumerate(widths):
        layers += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w)]; cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, n_cls))

def finetune(cfg: FinetuneStage, store: Store) -> dict | None:
    """Finetune one classifier on the labeled subset (`fraction` of 60,000 images' count, drawn from the pool with `seed`) with
    the finetune `recipe` + `overrides` for `epochs`, then evaluate once: on the test images (`evaluate='test'`) or on the
    held-out training images (`'heldout'`, for choosing a setting). `model`: 'vit' (from `pretrain`, or random init when
    None) or 'cnn' (the small ResNet trained from scratch with the same recipe)."""
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.metrics import accuracy
    from fastai.optimizer import Adam
    from fastai.torch_core import set_seed
    from gmml_fast.learner import finetune_learner
    from gmml_fast.finetune import BatchAugment
    path = encoder_file(store, cfg.pretrain)
    if cfg.pretrain is not None and path is None: return None
    t0 = time.perf_counter()
    x, y = load_fashion_mnist('train')
    q, pool = heldout(cfg.n_query)
    lab = pool_subset(y, pool, round(cfg.fraction*N_TRAIN), cfg.seed)
    xv, yv = (x[q], y[q]) if cfg.evaluate == 'heldout' else test_subset(cfg.n_test)
    set_seed(cfg.seed)        # head (and random encoder) initialisation, shuffling and augmentation all follow the seed
    dls = tensor_dls(x[lab], xv, y[lab], yv, vocab=FMNIST_CLASSES, bs=min(cfg.bs, len(lab)), val_bs=500, after_batch=tfms(cfg.size))
    r = with_overrides(get_recipe(cfg.recipe), **cfg.overrides)
    if cfg.model == 'cnn':
        learn = Learner(dls, small_resnet(), loss_func=CrossEntropyLossFlat(label_smoothing=r.label_smoothing), opt_func=Adam,
                        lr=r.peak_lr(cfg.bs), wd=r.wd, metrics=[accuracy], cbs=[BatchAugment(r.augment)] if r.augment else [])
        learn.recipe = r
    else:
        learn = finetune_learner(dls, pretrained=path, arch=cfg.arch, encoder_kwargs=dict(depth=cfg.depth), recipe=r, seed=cfg.seed)
    timing = Timing()
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe(cfg.epochs, cbs=[SkipValidation(), timing])
    t2 = time.perf_counter()
    with learn.no_bar(): loss, acc = (float(v) for v in learn.validate()[:2])    # the loss and accuracy; auxiliary terms follow
    rec = dict(protocol='finetune', label_fraction=cfg.fraction, seed=cfg.seed, test_accuracy=round(acc, 4), test_loss=round(loss, 4),
               test_images=len(yv), train_images=len(lab), finetune_epochs=cfg.epochs, finetune_steps=cfg.epochs*len(dls.train),
               finetune_bs=dls.train.bs, params=sum(v.numel() for v in learn.model.parameters()), evaluated_on=cfg.evaluate,
               loss_curve=timing.epoch_loss, train_minutes=round(timing.train_s/60, 3), eval_minutes=round((time.perf_counter() - t2)/60, 3),
               minutes=round((time.perf_counter() - t0)/60, 3))
    log(f"  finetune {cfg.model} {cfg.fraction:.0%} ({len(lab)} images, {cfg.epochs} epochs) seed {cfg.seed}: "
        f"{cfg.evaluate} accuracy {acc:.4f}, loss {timing.epoch_loss[0]:.3f} -> {timing.epoch_loss[-1]:.3f}")
    return rec


# ---------------------------------------------------------------------------------------------------- memory
def _rss_mib() -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'): return int(line.split()[1])/1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024

def memory_child(method: str, arch: str, size: int, bs: int, precision: str) -> dict:
    "In this (fresh) process: the memory three training steps of one configuration take (MiB) — CUDA's peak allocation, or the growth of the peak RSS on a CPU — and the process's peak."
    from gmml_fast.learner import gmml_learner, mae_learner, finetune_learner
    cuda = torch.cuda.is_available()
    dls = synthetic_dls(4*bs, size, bs, method == 'finetune', torch.device('cuda') if cuda else None)
    if method == 'finetune': learn = finetune_learner(dls, arch=arch, drloc=0.1, me=0.2, seed=0, precision=precision)
    else: learn = (gmml_learner if method == 'gmml' else mae_learner)(dls, arch, seed=0, precision=precision)
    class Measure(Callback):
        order = -20
        def before_batch(self):
            if self.iter: return
            if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); self.base = torch.cuda.memory_allocated()
            else: self.base = _rss_mib()
        def after_batch(self):
            if self.iter == 2: raise CancelFitException
    m = Measure()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=[m])
    if cuda: peak = torch.cuda.max_memory_allocated()/2**20; return dict(step_mib=round(peak - m.base/2**20, 1), peak_mib=round(peak, 1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024          # Linux: KiB
    return dict(step_mib=round(peak - m.base, 1), peak_mib=round(peak, 1))

def memory(cfg: MemoryStage, store: Store) -> dict:
    "The memory of one configuration's training step (`method`, `arch`, `size`, `bs`, `precision`), measured in a fresh process so that nothing before it counts."
    args = [getattr(cfg, k) for k in ('method', 'arch', 'size', 'bs', 'precision')]
    # `-m` from the repository root: the child imports this tree's benchmarks and gmml_fast, installed or not
    r = subprocess.run([sys.executable, '-m', 'benchmarks.stages', 'memory-child', *map(str, args)], capture_output=True, text=True, cwd=HERE.parent)
    if r.returncode: raise RuntimeError(f"the memory measurement of {args} failed:\n{r.stderr[-2000:]}")
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    log(f"  memory {' '.join(map(str, args))}: {rec['step_mib']:.0f} MiB per step, process peak {rec['peak_mib']:.0f} MiB")
    return dict(rec, device=torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')


# ---------------------------------------------------------------------------------------------------- throughput
def _loop_block_mask(rng, gh, gw, budget, n_blocks, hmin, hmax, wmin, wmax):
    "One image: draw up to n_blocks rectangles in order, keep them while the union fits, trim the first that does not, fill."
    m, count = torch.zeros(gh, gw, dtype=torch.bool), 0
    for _ in range(n_blocks):
        h, w = rng.randint(hmin, hmax), rng.randint(wmin, wmax)
        t, l = rng.randint(0, gh - h), rng.randint(0, gw - w)
        new = int((~m[t:t+h, l:l+w]).sum())
        if count + new <= budget:
            m[t:t+h, l:l+w] = True; count += new
            continue
        sub = ~m[t:t+h, l:l+w]
        idx = sub.flatten().nonzero().flatten()[:budget - count]      # its top rows first
        flat = torch.zeros(h*w, dtype=torch.bool); flat[idx] = True
        m[t:t+h, l:l+w] |= flat.view(h, w)
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

def loop_gmml_corrupt(x, corruption='gmml', align=1, seed=0):
    "The reference side of the corruption ratio: the same corruption as `gmml_corrupt`, one image at a time in Python."
    import math, random
    from gmml_fast.corruption import corruption_steps, to_grayscale
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    B, C, H, W = x.shape
    dev = x.device                       # on a GPU every per-image step below is its own small kernel launch
    out, mask = x.clone(), torch.zeros(B, 1, H, W, dtype=torch.bool, device=dev)
    for b in range(B):
        for s in corruption_steps(corruption):
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
            else: m = _loop_block_mask(rng, gh, gw, gh*gw, s.n_blocks, hmin, hmax, wmin, wmax)
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
                z = F.pad(img[None], (k//2, k//2, k//2, k//2), mode='replicate')
                z = F.conv2d(z, ker.view(1, 1, 1, k).expand(C, 1, 1, k), groups=C)
                alien = F.conv2d(z, ker.view(1, 1, k, 1).expand(C, 1, k, 1), groups=C)[0]
            out[b] = torch.where(m, alien, img)
            mask[b, 0] |= m
    return out, mask

def _fastai_rate(learn, epochs):
    "Images/s of the learner's training phase: the median epoch after the first (warm-up)."
    learn.remove_cb(learn.progress)
    timing = Timing()
    with learn.no_logging(): learn.fit(epochs, cbs=[timing, SkipValidation()])
    return len(learn.dls.train)*learn.dls.train.bs/statistics.median(timing.epoch_s[1:] or timing.epoch_s)

def _raw_gmml_rate(dls, model, lr, wd, epochs):
    "The same GMML step without fastai: our own batching of the same tensors, the same transforms, torch AdamW."
    from gmml_fast.corruption import GMMLCorruption
    from gmml_fast.pretrain import no_decay_params
    from gmml_fast.losses import MaskedL1Loss
    from gmml_fast.rng import rng_key
    decay = set(map(id, no_decay_params(model)))
    opt = torch.optim.AdamW([dict(params=[p for p in model.parameters() if id(p) not in decay], weight_decay=wd),
                             dict(params=[p for p in model.parameters() if id(p) in decay], weight_decay=0.0)], lr=lr)
    corruption, loss_fn, images, bs = GMMLCorruption('gmml'), MaskedL1Loss(), dls.train.images, dls.train.bs
    tf, gen, times = dls.train.after_batch, torch.Generator().manual_seed(0), []
    for _ in range(epochs):
        t0, perm = time.perf_counter(), torch.randperm(len(images))
        for i in range(0, len(images) - bs + 1, bs):
            xb = tf(images[perm[i:i+bs]])
            xc, m = corruption(xb, key=rng_key(generator=gen))
            loss = loss_fn(model(xc), xb, m)
            opt.zero_grad(); loss.backward(); opt.step()
        times.append(time.perf_counter() - t0)
    return (len(images)//bs)*bs/statistics.median(times[1:])

# The raw loop implements the bare GMML step: the rows compared with it run gmml@v1 without what that loop leaves out
# (augmentation, clipping, stochastic depth, the weight-decay schedule), so that the ratio compares like with like.
BARE_STEP = dict(augment=False, wd=0.05, wd_end=None, clip=None, drop_path=0.0)
NANO = 'ViT-Nano/6 at 28 px'

def throughput(cfg: ThroughputStage, store: Store) -> dict:
    "Images/s of every step the project compares, measured in one process (so their ratios compare like with like): batched corruption vs a per-image loop, GMML / MAE / finetuning steps, fastai vs a raw PyTorch loop, bf16 and compiled steps, the k-NN monitor."
    from gmml_fast.corruption import gmml_corrupt
    from gmml_fast.learner import gmml_learner, mae_learner, simmim_learner, finetune_learner
    from gmml_fast.config import PretrainConfig
    torch.manual_seed(0)
    t_start, bs, nb, epochs, rows = time.perf_counter(), 128, cfg.batches, cfg.epochs, {}
    x = torch.randn(256, 3, 32, 32)
    rows['gmml_corrupt, batched (256×3×32×32)'] = 256/median_seconds(lambda: gmml_corrupt(x, 'gmml', seed=0), cfg.repeats)
    rows['gmml_corrupt, per-image loop (256×3×32×32)'] = 256/median_seconds(lambda: loop_gmml_corrupt(x, 'gmml', seed=0), max(1, cfg.repeats//2), warmup=0)
    log('  corruption done')
    xs, ys = load_fashion_mnist('train')
    def loaders(size, channels, labeled):
        tf = image_batch_tfms(FMNIST_STATS, size, 'pad', channels)
        return (tensor_dls(xs[:nb*bs], xs[-128:], ys[:nb*bs], ys[-128:], vocab=FMNIST_CLASSES, bs=bs, after_batch=tf) if labeled
                else tensor_dls(xs[:nb*bs], xs[-128:], bs=bs, after_batch=tf))
    dls, fdls = loaders(32, 3, False), loaders(32, 3, True)
    rows['GMML step (fastai)'] = _fastai_rate(gmml_learner(dls, 'tiny_32', lr=1e-4, seed=0, **BARE_STEP), epochs)
    rows['MAE step, decoder 192-d × 4 (fastai)'] = _fastai_rate(mae_learner(dls, 'tiny_32', lr=1e-4, seed=0, **BARE_STEP), epochs)
    rows['MAE step, decoder 128-d × 1 (fastai)'] = _fastai_rate(mae_learner(dls, 'tiny_32', decoder_dim=128, decoder_depth=1, decoder_heads=4,
                                                                             lr=1e-4, seed=0, **BARE_STEP), epochs)
    rows['finetune step, CE (fastai)'] = _fastai_rate(finetune_learner(fdls, arch='tiny_32', lr=1e-4), epochs)
    rows['finetune step, CE + DRLoc + ME (fastai)'] = _fastai_rate(finetune_learner(fdls, arch='tiny_32', lr=1e-4, drloc=0.1, me=0.2), epochs)
    rows['GMML step (raw PyTorch loop)'] = _raw_gmml_rate(dls, gmml_learner(dls, 'tiny_32', lr=1e-4, seed=0, **BARE_STEP).model, 1e-4, BARE_STEP['wd'], epochs)
    log('  fastai steps done')
    ndls, nfdls, nano = loaders(28, 1, False), loaders(28, 1, True), dict(encoder_kwargs=dict(depth=6), lr=1e-4)
    builders = {'GMML': lambda **k: gmml_learner(ndls, 'nano_28', seed=0, **nano, **k),
                'MAE': lambda **k: mae_learner(ndls, 'nano_28', seed=0, **nano, **k),
                'SimMIM': lambda **k: simmim_learner(ndls, 'nano_28', seed=0, **nano, **k),
                'finetune': lambda **k: finetune_learner(nfdls, arch='nano_28', **nano, **k)}
    for name, build in builders.items():
        for label, kw in (('float32', {}), ('bf16', dict(precision='bf16')), ('compiled', dict(compile=True))):
            torch._dynamo.reset()
            rows[f'{name} step, {NANO}, {label} (fastai)'] = _fastai_rate(build(**kw), epochs)
    log('  precision and compilation done')
    cli = PretrainConfig()                   # the k-NN monitor at the command line's defaults, after every epoch
    n_bank, n_query = cli.monitor, cli.monitor//4
    for label, linear in (('k-NN', False), ('k-NN + linear probe', True)):
        mon, learn = KNNMonitor((xs[:n_bank], ys[:n_bank]), (xs[n_bank:n_bank + n_query], ys[n_bank:n_bank + n_query]), linear=linear), builders['GMML']()
        learn.remove_cb(learn.progress)
        with learn.no_logging(): learn.fit(2, cbs=[mon])
        rows[f'{label} monitor read-out ({n_bank:,} + {n_query} images)'] = (n_bank + n_query)/min(mon.seconds)   # warm caches, as in a long run
    log('  monitor done')
    return dict(setup=f'ViT-Tiny (192-d, 12 blocks, patch 4) on 3×32×32 Fashion-MNIST batches of {bs} and ViT-Nano/6 on 1×28×28 ones; '
                      f'{nb} batches per epoch, {epochs} epochs, the median epoch after a warm-up one; corruption on random 256×3×32×32 batches',
                images_per_s=rows, wall_s=round(time.perf_counter() - t_start, 1))



# ---------------------------------------------------------------------------------------------------- host work per step
HOST_SETTINGS = {
    'tiny': dict(label='1-block 16-d ViT, batches of 8 at 28 px', encoder_kwargs=dict(depth=1, embed_dim=16, num_heads=1), bs=8),
    'nano': dict(label='ViT-Nano/6, batches of 128 at 28 px', encoder_kwargs=dict(depth=6), bs=128),
}
HOST_STEPS = ('finetune, CE', 'finetune, CE + DRLoc + ME', 'GMML', 'MAE', 'SimMIM',
              'finetune, CE (fastai Adam, fastai bar)', 'GMML (fastai Adam, fastai bar)')

def host(cfg: HostStage, store: Store) -> dict:
    "Per training batch of every library learner at one setting (`setting` in HOST_SETTINGS): ATen ops, kernel launches, host syncs, literals and host ms (`gmml_fast.step.step_host_work`), on random 1×28×28 images; the last two rows swap in fastai's own Adam and progress bar."
    from fastai.callback.progress import ProgressCallback
    from fastai.optimizer import Adam
    from gmml_fast.learner import gmml_learner, mae_learner, simmim_learner, finetune_learner
    from gmml_fast.step import step_host_work
    s = HOST_SETTINGS[cfg.setting]
    torch.manual_seed(0)
    n, bs = cfg.long + 2, s['bs']
    udl, ldl = (synthetic_dls(n*bs, 28, bs, labeled, channels=1) for labeled in (False, True))
    kw = dict(arch='nano_28', encoder_kwargs=s['encoder_kwargs'], seed=0)
    def stock(learn):                        # what every step paid before: fastai's per-tensor Adam and per-batch bar
        learn.opt_func = Adam
        learn.remove_cb(learn.progress); learn.add_cb(ProgressCallback())
        return learn
    build = {'finetune, CE': lambda: finetune_learner(ldl, **kw),
             'finetune, CE + DRLoc + ME': lambda: finetune_learner(ldl, drloc=0.1, me=0.2, **kw),
             'GMML': lambda: gmml_learner(udl, **kw), 'MAE': lambda: mae_learner(udl, **kw), 'SimMIM': lambda: simmim_learner(udl, **kw),
             'finetune, CE (fastai Adam, fastai bar)': lambda: stock(finetune_learner(ldl, **kw)),
             'GMML (fastai Adam, fastai bar)': lambda: stock(gmml_learner(udl, **kw))}
    rows = {}
    for name in HOST_STEPS:
        w = step_host_work(build[name](), short=cfg.short, long=cfg.long, repeats=cfg.repeats)
        rows[name] = {k: w[k] for k in ('ops', 'launches', 'syncs', 'literals', 'ms')}
        log(f"  {name}: {rows[name]}")
    return dict(setting=s['label'], per_batch=rows)


STAGES = dict(pretrain=pretrain, readout=readout, frozen=frozen, finetune=finetune, memory=memory, throughput=throughput, host=host)

if __name__ == '__main__' and sys.argv[1:2] == ['memory-child']:
    m, arch, size, bs, precision = sys.argv[2:7]
    print(json.dumps(memory_child(m, arch, int(size), int(bs), precision)))

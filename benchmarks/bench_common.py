"""Small helpers shared by the benchmark scripts (not part of the library)."""
import platform
from pathlib import Path

from fastai.callback.core import Callback, CancelValidException

# The pretraining recipe the committed label-efficiency, ablation, throughput and pretraining results were measured with
# (before augmentation, the weight-decay schedule, clipping and drop-path became library defaults): the scripts pass it
# explicitly so that their committed numbers stay reproducible.
RECIPE_BEFORE = dict(augment=False, wd=0.05, wd_end=None, clip=None, drop_path=0.0)

# GMML's decoder the committed ablation, recipe, pretraining and label-efficiency results were measured with: hidden width
# 4x the encoder's (capped at 2048). The library's default became the encoder's own width (bench_decoder.py).
def gmml_decoder_before(embed_dim: int) -> dict: return dict(hidden_dim=min(4*embed_dim, 2048))


def cpu_name() -> str:
    "The CPU's model name from /proc/cpuinfo, else what `platform` knows."
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def run_meta(script: str, argv, threads: int) -> dict:
    "What a benchmark report records about its run: the command as typed, the git commit, the machine and the date (UTC)."
    import os, shlex, subprocess, sys
    from datetime import datetime, timezone
    import torch
    try: commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                                 cwd=Path(__file__).parent).stdout.strip() or None
    except OSError: commit = None   # no git on the machine: the report says so rather than failing after hours of work
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'
    return dict(command=f'python benchmarks/{script} ' + shlex.join(sys.argv[1:] if argv is None else argv), commit=commit,
                machine=f"{cpu_name()}, {os.cpu_count()} logical CPUs, {threads} torch threads, torch {torch.__version__}, {gpu}",
                date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))


class SkipValidation(Callback):
    "Skip fastai's per-epoch validation: the benchmarks evaluate once, after training."
    def before_validate(self): raise CancelValidException()


def write_results(stem: str, res: dict, md: list) -> None:
    "Write `res` to benchmarks/results/<stem>.json and the markdown lines `md` to <stem>.md, and print the markdown."
    import json
    out = Path(__file__).parent/'results'; out.mkdir(exist_ok=True)
    (out/f'{stem}.json').write_text(json.dumps(res, indent=1))
    (out/f'{stem}.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))


def heldout_split(n_pretrain: int, n_bank: int, n_query: int, seed: int = 0):
    "Disjoint index sets of the 60k Fashion-MNIST training images: queries (held out from everything), the labeled bank, the pretraining images (which may include the bank, unlabeled, never the queries)."
    import torch
    p = torch.randperm(60000, generator=torch.Generator().manual_seed(seed))
    return p[:n_query], p[n_query:n_query + n_bank], p[n_query:n_query + n_pretrain]


def frozen_features(encoder, x, size: int, bs: int = 500):
    "Frozen features of raw Fashion-MNIST images `x` (uint8, N×28×28 or N×1×28×28): through the loaders' batch transforms at `size` px (zero-padded), then the library's `embed_images` (mean of the final patch tokens)."
    import torch
    from gmml_fast.data import tensor_dls, image_batch_tfms, FMNIST_STATS
    from gmml_fast.evaluate import embed_images
    dl = tensor_dls(x, x[:1], bs=bs, shuffle=False, drop_last=False, after_batch=image_batch_tfms(FMNIST_STATS, size, 'pad', 1)).train
    return torch.cat([embed_images(encoder, xb) for (xb,) in dl])


def heldout_cli(doc: str, stem: str, modes: dict):
    "The command line the held-out benchmarks share (--quick, --threads, --overwrite): returns (args, mode, settings, output path without suffix); refuses to overwrite results."
    import argparse, sys, torch
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument('--quick', action='store_true'); ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--overwrite', action='store_true')
    a = ap.parse_args()
    mode = 'quick' if a.quick else 'full'
    torch.set_num_threads(a.threads)
    out = Path(__file__).parent/'results'/(stem + ('_quick' if a.quick else ''))
    if out.with_suffix('.json').exists() and not a.overwrite: sys.exit(f"{out}.json exists; pass --overwrite to replace it")
    return a, mode, modes[mode], out

"""How wide the encoder should be for GMML on small data, measured on held-out TRAINING images (the test set is not touched).

GMML's k-NN read-out of the label-efficiency study's ViT-Nano (96-d, 6 blocks) stops rising after about 4 epochs
(bench_longer_pretrain.py), so more epochs of the same model buy little. This script asks whether width does: it
pretrains ViT-Nano (96-d, 3 heads) and ViT-Tiny (192-d, 3 heads), both with 6 blocks at 28 px in 4 px patches and
the library's default GMML recipe and decoder (as wide as the encoder), for the same epochs on the same images, and
reads each frozen encoder out exactly as bench_decoder.py does (k-NN, k = 20, and a linear probe; bank 10,000 labeled
training images, queries 2,000 other training images that pretraining never sees). It also times the step, so the
table says what the width costs.

    python benchmarks/bench_encoder_width.py            # writes benchmarks/results/encoder_width.{json,md} (~25 min, 2 cores)
    python benchmarks/bench_encoder_width.py --quick    # a smoke test (encoder_width_quick.*)
"""
import json, os, statistics, subprocess, sys
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import cpu_name, heldout_cli
from bench_decoder import run_variants, MODES, DEPTH, SIZE, BS, LR

ENCODERS = [('ViT-Nano (96-d)', 'nano_28'), ('ViT-Tiny (192-d)', 'tiny_28')]

def main():
    a, mode, cfg, out = heldout_cli(__doc__, 'encoder_width', MODES)
    records = run_variants(cfg, [(name, dict(encoder=name, arch=arch), dict(arch=arch)) for name, arch in ENCODERS])
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    meta = dict(mode=mode, **{k: v for k, v in cfg.items() if k != 'seeds'}, seeds=list(cfg['seeds']), depth=DEPTH, size=SIZE, bs=BS, lr=LR,
                command='python benchmarks/bench_encoder_width.py' + (' --quick' if a.quick else ''), commit=commit,
                machine=f"{cpu_name()}, {os.cpu_count()} logical CPUs, {a.threads} torch threads, torch {torch.__version__}, no GPU",
                date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))
    out.with_suffix('.json').write_text(json.dumps(dict(meta=meta, records=records), indent=1))
    of = lambda name: [r for r in records if r['encoder'] == name]
    mean = lambda name, k: statistics.mean(r[k] for r in of(name))
    base = ENCODERS[0][0]
    rows = '\n'.join(f"| {name} | {of(name)[0]['encoder_params']:,} | " + ' / '.join(f"{r['knn_accuracy']:.2f}" for r in of(name))
                     + f" | {mean(name, 'knn_accuracy'):.2f} | " + ' / '.join(f"{r['linear_accuracy']:.2f}" for r in of(name))
                     + f" | {mean(name, 'linear_accuracy'):.2f} | {mean(name, 'step_ms'):.0f} | {mean(name, 'step_ms')/mean(base, 'step_ms'):.2f}× |"
                     for name, _ in ENCODERS)
    md = f"""# GMML's encoder width, on held-out training images

Frozen read-outs of GMML-pretrained encoders ({DEPTH} blocks, {SIZE} px, 4 px patches; {cfg['n_pretrain']:,} unlabeled training images,
{cfg['epochs']} epochs, warm-up + cosine, lr {LR}, batch {BS}, the library's default recipe and decoder): k-NN (k = 20, cosine) and a
linear probe fitted on {cfg['n_bank']:,} labeled training images and scored on {cfg['n_query']:,} *other training images* that pretraining
never saw. The test set is not used. Seeds {', '.join(map(str, cfg['seeds']))} (each cell lists them in order).

| encoder | encoder weights | k-NN (%) per seed | k-NN mean | linear (%) per seed | linear mean | step (ms) | step / ViT-Nano |
|---|---|---|---|---|---|---|---|
{rows}

Step: median wall time of one training batch of {BS} (forward, backward, optimiser step, corruption and augmentation).

Machine: {meta['machine']}. Command: `{meta['command']}`, commit {commit}, {meta['date']}.
"""
    out.with_suffix('.md').write_text(md)
    print(md)

if __name__ == '__main__': main()

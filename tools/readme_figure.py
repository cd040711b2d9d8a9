"""Copy the reconstruction figure of a main-job run into the README (docs/images/main_job.png) with what made it.

    python tools/readme_figure.py outputs/pretrain/<run folder> [--overwrite]

The figure is the one `python -m gmml_fast.train pretrain` (`bash run.sh main`) draws at the end of a run:
clean | corrupted | mask | reconstruction for six validation images. Next to it, docs/images/main_job.json records the
run's settings and results, so the README's caption can be checked against them.
"""
import argparse, json, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DST = ROOT/'docs'/'images'/'main_job.png'

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run', type=Path, help='a finished pretraining run folder (with reconstruction.png and result.json)')
    ap.add_argument('--overwrite', action='store_true', help='replace the figure already in docs/images')
    a = ap.parse_args(argv)
    fig, res, cfg = a.run/'reconstruction.png', a.run/'result.json', a.run/'config.json'
    for f in (fig, res, cfg):
        if not f.is_file(): sys.exit(f"error: {f} is missing: pass a finished run folder of `python -m gmml_fast.train pretrain`")
    if DST.exists() and not a.overwrite: sys.exit(f"error: {DST} exists; pass --overwrite to replace it")
    DST.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(fig, DST)
    c, r = json.loads(cfg.read_text()), json.loads(res.read_text())
    keep = ('method', 'arch', 'size', 'depth', 'epochs', 'bs', 'lr', 'fraction', 'corruption', 'no_augment', 'seed', 'train_images')
    opts = {**c['config'], **c['resolved']}          # the options as given, with arch/size/depth as the run resolved them
    meta = dict(run=a.run.name, **{k: opts.get(k, c.get(k)) for k in keep},
                **{k: r[k] for k in ('valid_loss_before', 'valid_loss_after', 'minutes') if k in r})
    DST.with_suffix('.json').write_text(json.dumps(meta, indent=1) + '\n')
    print(f"wrote {DST.relative_to(ROOT)} and {DST.with_suffix('.json').relative_to(ROOT)}")

if __name__ == '__main__': main()

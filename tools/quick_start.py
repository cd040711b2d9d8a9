"""Follow the README's quick start as written and record what it measured.

    python tools/quick_start.py [--out DIR] [--overwrite]

It runs the main job (`bash run.sh main`, i.e. `python -m gmml_fast.train pretrain` with its defaults), then the two
finetune commands of the README (with `--pretrained <run>` and without), each in a process of its own as a user
types them in a shell, and writes
* docs/images/quick_start.json: the commands, the machine, the minutes of each command, the accuracies and their gap;
* docs/images/main_job.png (+ main_job.json): the main job's reconstruction figure, the README's picture;
* docs/images/quick_start_encoder/: the main job's encoder as a timm model folder (tutorial_gmml_fmnist finetunes it).
The README and the Results page render their quick-start numbers from that record; `tests/test_quickstart.py` runs
the same `follow()` (into a temporary folder) and checks that the pretrained encoder ends ahead.
About 8 minutes on two CPU cores. Existing records are kept unless `--overwrite` is given.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT/'docs'/'images'
RECORD, FIGURE, ENCODER = IMAGES/'quick_start.json', IMAGES/'main_job.png', IMAGES/'quick_start_encoder'
# The three commands exactly as the README gives them; `follow` runs each in a Python process of its own.
COMMANDS = ('bash run.sh main',
            'python -m gmml_fast.train finetune --pretrained outputs/pretrain/<run folder> --drloc 0.1',
            'python -m gmml_fast.train finetune --drloc 0.1')
# DRLoc 0.1 alone: the finetune variant chosen for GMML encoders on held-out training images (benchmarks/results/finetune_recipe.md)
FINETUNE_OPTIONS = dict(drloc=0.1)


def machine() -> dict:
    "The machine a record was measured on: CPU model, logical CPUs, torch threads, torch version, GPU."
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): cpu = line.split(':', 1)[1].strip(); break
    except OSError: pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'none (CPU only)'
    return dict(cpu=cpu, logical_cpus=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
                gpu=gpu, python=platform.python_version())


def run_options(meta: dict) -> dict:
    "A run's command-line options from its config.json, without the overrides (the recipe's fields are recorded in full)."
    return {k: v for k, v in meta['config'].items() if k != 'overrides'}


def _command(args: list, out: Path) -> dict:
    "One command of the quick start in a Python process of its own, as a user types it in a shell; returns the result.json of the run it made in `out`."
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    r = subprocess.run([sys.executable, '-m', 'gmml_fast.train', *args, '--out', str(out)], capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f"`python -m gmml_fast.train {' '.join(args)}` failed:\n{r.stderr[-3000:]}")
    (run,) = set(out.iterdir()) - before
    return json.loads((run/'result.json').read_text())


def follow(out: Path) -> tuple[dict, Path]:
    "Run the quick start's three commands into `out`, each in its own process (nothing carries over between them but the files); returns (the record, the main job's run folder)."
    out = Path(out)
    minutes, t = [], time.perf_counter()
    pre = _command(['pretrain'], out/'pretrain')
    minutes.append((time.perf_counter() - t)/60); t = time.perf_counter()
    opts = [a for k, v in FINETUNE_OPTIONS.items() for a in (f'--{k}', str(v))]
    ft_pre = _command(['finetune', '--pretrained', pre['run'], *opts], out/'finetune')
    minutes.append((time.perf_counter() - t)/60); t = time.perf_counter()
    ft_rnd = _command(['finetune', *opts], out/'finetune')
    minutes.append((time.perf_counter() - t)/60)
    from gmml_fast.runs import compare_initialisations
    ft_rnd.update(compare_initialisations(ft_rnd['run']))      # as the command printed it (result.json keeps the run's own numbers)
    meta = lambda res: json.loads((Path(res['run'])/'config.json').read_text())
    pre_meta, ft_meta = meta(pre), meta(ft_rnd)
    record = dict(
        commands=list(COMMANDS), machine=machine(), date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        pretrain=dict(config={**run_options(pre_meta), **pre_meta['recipe']['fields'], **pre_meta['resolved']},
                      recipe=pre_meta['recipe']['name'], train_images=pre_meta['train_images'],
                      valid_loss_before=pre['valid_loss_before'], valid_loss_after=pre['valid_loss_after']),
        finetune=dict(options=FINETUNE_OPTIONS, epochs=ft_meta['recipe']['fields']['epochs'], recipe=ft_meta['recipe']['name'],
                      label_fraction=ft_meta['config']['label_fraction'],
                      train_images=ft_meta['train_images'], test_images=ft_meta['valid_images']),
        minutes=dict(zip(('pretrain', 'finetune_pretrained', 'finetune_random_init'), (round(m, 2) for m in minutes))),
        accuracy=dict(pretrained=ft_pre['accuracy'], random_init=ft_rnd['accuracy']),
        fgsm_accuracy_1_255=dict(pretrained=ft_pre['fgsm_accuracy_1_255'], random_init=ft_rnd['fgsm_accuracy_1_255']),
        compared_with_pretrained_run=ft_rnd.get('compared_with') == ft_pre['run'],
        summary=ft_rnd['pretrained_vs_random_init'])
    record['gap_points'] = round(100*(record['accuracy']['pretrained'] - record['accuracy']['random_init']), 2)
    return record, Path(pre['run'])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', type=Path, default=ROOT/'outputs'/'quick_start', help='where the three runs go')
    ap.add_argument('--overwrite', action='store_true', help='replace the committed record, figure and encoder')
    ap.add_argument('--note', help='a sentence for the record on how the run went (e.g. other work on the machine)')
    a = ap.parse_args(argv)
    kept = [p for p in (RECORD, FIGURE, ENCODER) if p.exists()]
    if kept and not a.overwrite:
        sys.exit(f"error: {', '.join(str(p.relative_to(ROOT)) for p in kept)} exist; pass --overwrite to replace them")
    record, run = follow(a.out)
    if a.note: record['note'] = a.note
    IMAGES.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run/'reconstruction.png', FIGURE)
    if ENCODER.exists(): shutil.rmtree(ENCODER)
    shutil.copytree(run/'timm_encoder', ENCODER)
    RECORD.write_text(json.dumps(record, indent=1) + '\n')
    print(json.dumps(record, indent=1))
    print(f'wrote {RECORD.relative_to(ROOT)}, {FIGURE.relative_to(ROOT)} and {ENCODER.relative_to(ROOT)}/')


if __name__ == '__main__': main()

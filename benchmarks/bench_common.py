"""Small helpers shared by the benchmark scripts (not part of the library)."""
import platform
from pathlib import Path

from fastai.callback.core import Callback, CancelValidException

# The pretraining recipe the committed label-efficiency, ablation, throughput and pretraining results were measured with
# (before augmentation, the weight-decay schedule, clipping and drop-path became library defaults): the scripts pass it
# explicitly so that their committed numbers stay reproducible.
RECIPE_BEFORE = dict(augment=False, wd=0.05, wd_end=None, clip=None, drop_path=0.0)


def cpu_name() -> str:
    "The CPU's model name from /proc/cpuinfo, else what `platform` knows."
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


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

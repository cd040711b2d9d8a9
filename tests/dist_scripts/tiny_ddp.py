"Tiny distributed run for tests/test_distributed.py: `python -m gmml_fast.launch --nproc 2 tiny_ddp.py {pretrain|finetune} OUT`."
import os, sys
from pathlib import Path
os.environ.setdefault('MPLBACKEND', 'Agg')
import torch
from fastai.callback.progress import ProgressCallback

from gmml_fast.datasets import finetune_dls, pretrain_dls
from gmml_fast.learner import gmml_learner, finetune_learner
from gmml_fast.distributed import distrib_ctx, is_rank0
from gmml_fast.checkpoint import CheckpointEveryEpoch
from fastai.torch_core import rank_distrib
from fastai.callback.core import Callback

mode, out = sys.argv[1], Path(sys.argv[2])
torch.manual_seed(0)                 # DDP broadcasts rank 0's weights anyway; the corruption streams differ by rank
tiny = dict(arch='nano_32', encoder_kwargs=dict(depth=2))
if mode == 'pretrain':
    dls = pretrain_dls('fashion_mnist', bs=32, fraction=512/60000, valid=0.01, n_valid=64, size=32)
    learn = gmml_learner(dls, seed=0, path=out, **tiny)      # the GMML callback adds the rank: one stream per rank
elif mode == 'finetune':
    dls = finetune_dls('fashion_mnist', bs=32, label_fraction=512/60000, valid=0.01, n_valid=64, size=32)
    learn = finetune_learner(dls, path=out, me=0.1, mae=0.1, **tiny)   # auxiliary terms: their columns must be reduced too; MAE re-runs the shared encoder under DDP
else: raise ValueError(f"mode must be pretrain or finetune, got {mode!r}")
learn.remove_cb(ProgressCallback)
rank = rank_distrib()
torch.save({k: v.clone() for k, v in learn.model.state_dict().items()}, out/f'init{rank}.pt')
class CountBatches(Callback):
    "Training batches this rank saw (each rank should see its share of the epoch)."
    def before_fit(self): self.n = 0
    def after_batch(self): self.n += int(self.training)
count, ckpt = CountBatches(), CheckpointEveryEpoch(out/'ckpt.pth', fit_kwargs=dict(lr_max=1e-3))
with distrib_ctx(learn):
    learn.fit_one_cycle(1, 1e-3, cbs=[count, ckpt])
    n_batches = count.n
    stream = learn.gmml.generator.initial_seed() if mode == 'pretrain' else None   # the stream this rank actually drew from
    values = [[float(v) for v in row] for row in learn.recorder.values]           # validation loss/metrics as logged on this rank
torch.save(dict(model=learn.model.state_dict(), world=torch.distributed.get_world_size(), n_batches=n_batches, stream=stream, values=values,
            saved=[str(p) for p in ckpt.saved]),
           out/f'final{rank}.pt')

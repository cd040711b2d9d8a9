"The first keys every seeded callback draws, per rank: `python -m gmml_fast.launch --nproc 2 seeded_streams.py OUT` (tests/test_distributed.py)."
import json, os, sys
from pathlib import Path
os.environ.setdefault('MPLBACKEND', 'Agg')
from fastai.torch_core import rank_distrib

from gmml_fast.datasets import finetune_dls, pretrain_dls
from gmml_fast.learner import gmml_learner, mae_learner, finetune_learner
from gmml_fast.pretrain import SeededCallback
from gmml_fast.rng import rng_key

out = Path(sys.argv[1])
tiny = dict(arch='nano_32', encoder_kwargs=dict(depth=1))
pdls = pretrain_dls('fashion_mnist', bs=8, fraction=64/60000, valid=0.01, n_valid=16, size=32)
fdls = finetune_dls('fashion_mnist', bs=8, label_fraction=64/60000, valid=0.01, n_valid=16, size=32)
# the user passes the plain seed everywhere; the callbacks add the rank
learners = [gmml_learner(pdls, seed=0, **tiny), mae_learner(pdls, seed=0, **tiny),
            finetune_learner(fdls, drloc=0.1, me=0.1, seed=0, **tiny)]
keys = {type(cb).__name__: [rng_key(generator=cb.generator).tolist() for _ in range(3)]
        for learn in learners for cb in learn.cbs if isinstance(cb, SeededCallback)}
(out/f'streams{rank_distrib()}.json').write_text(json.dumps(keys))

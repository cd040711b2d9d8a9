"`torch.compile(gmml_corrupt, fullgraph=True)` traces without graph breaks and matches eager mode (about a minute on 2 CPU cores)."
import pytest
import torch
from gmml_fast.datasets import pretrain_dls
from gmml_fast.corruption import gmml_corrupt
from gmml_fast.rng import rng_key

@pytest.mark.slow
def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    compiled = torch.compile(gmml_corrupt, fullgraph=True)      # fullgraph: any graph break is an error
    x = torch.randn(4, 3, 16, 16)
    for seed in (0, 1):                                         # a new key is a new input, not a recompilation
        key = rng_key(seed)
        out, mask = compiled(x, 'gmml', key=key)
        eout, emask = gmml_corrupt(x, 'gmml', key=key)
        assert torch.equal(mask, emask)                         # masks are integer work: bit-identical
        torch.testing.assert_close(out, eout, rtol=1e-5, atol=1e-5)   # fused float kernels may round differently
    assert not torch.equal(compiled(x, 'gmml', key=rng_key(0))[1], compiled(x, 'gmml', key=rng_key(1))[1])

@pytest.mark.slow
def test_compiled_learner_trains_with_the_same_parameter_names(tmp_path):
    "compile=True: nn.Module.compile() in place, so the state dict (checkpoints, exported encoder) keeps its names, and it trains."

    from gmml_fast.learner import gmml_learner
    dls = pretrain_dls('fashion_mnist', bs=32, fraction=256/60000, valid=0.01, n_valid=32, size=32)
    kw = dict(arch='nano_32', encoder_kwargs=dict(depth=1), seed=0, lr=1e-3, path=tmp_path)
    eager, compiled = gmml_learner(dls, **kw), gmml_learner(dls, compile=True, **kw)
    assert list(eager.model.state_dict()) == list(compiled.model.state_dict())
    torch._dynamo.reset()
    with compiled.no_bar(), compiled.no_logging(): compiled.fit(2)
    losses = [float(v) for v in compiled.recorder.losses]
    assert all(v == v for v in losses) and sum(losses[-3:]) < sum(losses[:3])
    compiled.export_encoder('enc.safetensors')                  # plain timm names: loads into a fresh encoder
    from gmml_fast.encoder import create_encoder
    from gmml_fast.encoder import load_encoder
    load_encoder(create_encoder('nano_32', in_chans=1, depth=1), tmp_path/'enc.safetensors')

@pytest.mark.slow
def test_compile_puts_the_whole_gmml_forward_step_in_one_graph():
    "compile=True: the views, the corruption and the model are one compiled call (GMMLModel(x, key) with the callback's GMMLInputs), with the eager step's losses (same seed: same shuffle, weights and keys)."
    from fastai.callback.core import Callback, CancelFitException
    from fastai.torch_core import set_seed
    from gmml_fast.data import tensor_dls, image_batch_tfms
    from gmml_fast.learner import gmml_learner
    from gmml_fast.gmml import GMMLOutput
    x = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    class ThreeSteps(Callback):
        def after_batch(self):
            if self.iter >= 2: raise CancelFitException
    def run(compile):
        torch._dynamo.reset(); set_seed(0)
        dls = tensor_dls(x, x[:16], bs=16, after_batch=image_batch_tfms(([0.5], [0.25])))
        learn = gmml_learner(dls, 'nano_28', encoder_kwargs=dict(depth=1), seed=0, compile=compile)
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=ThreeSteps())
        return learn, [float(v) for v in learn.recorder.losses]
    (eager, a), (compiled, b), (graphs, c) = run(False), run(True), run('reduce-overhead')
    assert compiled.gmml.in_graph and graphs.gmml.in_graph and not eager.gmml.in_graph
    # CUDA graphs' mode: on a CPU it compiles as compile=True does, and gives the eager step's losses too
    assert len(c) == 2 and max(abs(u - v) for u, v in zip(a, c)) < 1e-5, (a, c)
    assert compiled.model.inputs is compiled.gmml.inputs and eager.model.inputs is None
    out = compiled.model(x[:4].float()/255, torch.tensor([1, 2]))              # the compiled call with a key
    assert isinstance(out, GMMLOutput) and out.mask.shape == (4, 1, 28, 28)
    assert len(a) == 2 and max(abs(u - v) for u, v in zip(a, b)) < 1e-5, (a, b)

def test_compile_takes_a_mode_or_is_one_error():
    from gmml_fast.data import tensor_dls
    from gmml_fast.learner import finetune_learner
    x, y = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (16,))
    dls = tensor_dls(x, x, y, y, vocab=list('abcdefghij'), bs=8)
    with pytest.raises(ValueError, match=r"compile must be True, False or a torch.compile mode \(default, reduce-overhead"):
        finetune_learner(dls, arch='nano_28', encoder_kwargs=dict(depth=1), compile='fast')

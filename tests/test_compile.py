"`torch.compile(gmml_corrupt, fullgraph=True)` traces without graph breaks and matches eager mode (about a minute on 2 CPU cores)."
import torch
from gmml_fast.aliens import gmml_corrupt
from gmml_fast.masking import rng_key

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

"Property tests for patching and mask conversions (hypothesis), and encoder output shapes."
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gmml_fast.patches import patchify, unpatchify, grid_size, token_to_pixel_mask, pixel_to_token_mask
from gmml_fast.encoder import create_encoder, block_outputs

@st.composite
def image_batches(draw):
    ph, pw = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    gh, gw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    B, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    x = torch.randn(B, C, gh*ph, gw*pw, generator=torch.Generator().manual_seed(seed))
    return x, (ph, pw)

@settings(max_examples=60, deadline=None)
@given(image_batches())
def test_patchify_unpatchify_identity(batch):
    x, p = batch
    B, C, H, W = x.shape
    t = patchify(x, p)
    assert t.shape == (B, (H//p[0])*(W//p[1]), p[0]*p[1]*C)
    assert torch.equal(unpatchify(t, p, (H, W)), x)
    # tokens are a permutation of the pixels: nothing lost, nothing invented
    assert torch.equal(t.flatten().sort().values, x.flatten().sort().values)

@settings(max_examples=60, deadline=None)
@given(image_batches(), st.floats(0, 1))
def test_mask_roundtrip(batch, ratio):
    x, p = batch
    B, _, H, W = x.shape
    N = (H//p[0])*(W//p[1])
    tm = torch.rand(B, N, generator=torch.Generator().manual_seed(N)) < ratio
    pm = token_to_pixel_mask(tm, p, (H, W))
    assert pm.shape == (B, 1, H, W) and pm.dtype == torch.bool
    for mode in ('any', 'all'): assert torch.equal(pixel_to_token_mask(pm, p, mode), tm)
    assert torch.equal(pixel_to_token_mask(pm, p, 'frac'), tm.float())
    # the pixel mask agrees with patchify: a token is masked iff all its pixels are
    assert torch.equal(patchify(pm.float(), p).bool().all(-1), tm)

def test_pixel_mask_off_grid():
    m = torch.zeros(1, 1, 8, 8, dtype=torch.bool); m[..., 1:3, 0:4] = True   # covers half of tokens 0 and 1
    assert pixel_to_token_mask(m, 4, 'any').tolist() == [[True, False, False, False]]
    assert pixel_to_token_mask(m, 4, 'all').tolist() == [[False, False, False, False]]
    assert pixel_to_token_mask(m, 4, 'frac').tolist() == [[0.5, 0.0, 0.0, 0.0]]

@pytest.mark.parametrize('hw,p', [((30, 32), 4), ((32, 30), 4), ((28, 28), 8)])
def test_indivisible_sizes_raise(hw, p):
    with pytest.raises(ValueError, match='not divisible by patch size'): grid_size(hw, p)
    with pytest.raises(ValueError, match='not divisible by patch size'): patchify(torch.zeros(1, 1, *hw), p)

@pytest.mark.parametrize('arch,size,chans,dim,grid', [('nano_28', 28, 1, 96, 7), ('tiny_32', 32, 3, 192, 8),
                                                       ('tiny_224', 224, 3, 192, 14)])
def test_create_encoder_shapes(arch, size, chans, dim, grid):
    enc = create_encoder(arch, in_chans=chans).eval()
    x = torch.randn(2, chans, size, size)
    with torch.no_grad():
        assert enc(x).shape == (2, dim)
        assert enc.forward_features(x).shape == (2, grid*grid + 1, dim)   # + CLS token
        outs = block_outputs(enc, x, blocks=(6, 8, 10, 12))
    assert [o.shape for o in outs] == [(2, dim, grid, grid)]*4

def test_encoder_with_head_and_nonsquare():
    enc = create_encoder('vit_tiny', img_size=(28, 36), patch_size=4, depth=2, num_classes=10)
    assert enc(torch.randn(3, 3, 28, 36)).shape == (3, 10)
    assert block_outputs(enc, torch.randn(1, 3, 28, 36), blocks=[2])[0].shape == (1, 192, 7, 9)

def test_chosen_blocks_are_the_right_ones():
    "block_outputs(blocks=[k]) equals running the first k blocks by hand."
    enc = create_encoder('nano_32', depth=4).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = enc.norm_pre(enc._pos_embed(enc.patch_embed(x)))
        by_hand = []
        for blk in enc.blocks:
            h = blk(h); by_hand.append(h[:, enc.num_prefix_tokens:])
        outs = block_outputs(enc, x, blocks=[1, 3], fmt='NLC')
    torch.testing.assert_close(outs[0], by_hand[0]); torch.testing.assert_close(outs[1], by_hand[2])

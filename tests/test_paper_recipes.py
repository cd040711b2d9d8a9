"""The papers' recipes, exactly: each paper's stated settings transcribed here by hand (with the section or file they
come from), compared with the named recipe's resolved values; one training step of every named recipe on tiny data;
and every named pretraining recipe through the command line on FakeData at the recipe's own image size.

Sources: Atito, Awais and Kittler, GMML is All you Need, 2022, arXiv:2205.14986 (§3.1-3.2) and its official code
(Sara-Ahmed/GMML: main.py, datasets/datasets_utils.py); He et al., Masked Autoencoders Are Scalable Vision Learners,
2021, arXiv:2111.06377 (Appendix A.1) and facebookresearch/mae (main_pretrain.py, models_mae.py); Tan, Pre-training of
Lightweight Vision Transformers on Small Datasets with Minimally Scaled Images, 2024, arXiv:2402.03752 (§2-3, Tables
1-2); Xie et al., SimMIM: A Simple Framework for Masked Image Modeling, 2021, arXiv:2111.09886 and microsoft/SimMIM
(configs/vit_base__800ep/simmim_pretrain__vit_base__img224__800ep.yaml, data/data_simmim.py); Touvron et al., DeiT,
2021, arXiv:2012.12877 (main.py), the protocol GMML §3.1 finetunes with; Floros, Enhancing Vision Transformers on
Small Datasets Using Self-Supervised Auxiliary Tasks, MSc thesis, University of Edinburgh, 2024 (§3.1, Tables 4.3, 4.6).
"""
import json, math, subprocess, sys
import pytest
import torch

from gmml_fast.recipe import NAMED_RECIPES, RECIPE_ALIASES, get_recipe
from gmml_fast.sources import RECIPE_SOURCES
from gmml_fast.encoder import ENCODER_PRESETS, create_encoder

# name -> {field: (value as the source states it, where)}. Rates are per 256 images (SimMIM and DeiT state theirs per 512).
PAPERS = {
    'gmml@atito2022': {
        'arch': ('tiny_224', '§3.2: ViT-T; §3.1: views resized to 224'), 'base_lr': (5e-4, '§3.1'), 'wd': (0.04, '§3.1'),
        'wd_end': (0.4, '§3.1'), 'epochs': (800, '§3.2'), 'corruption': ('gmml_paper', '§3.1: "up to 35 %"'), 'flip': (0.5, '§3.1'),
        'warmup': (10/800, 'main.py: 10 warm-up epochs'), 'lr_end': (1e-6/5e-4, 'main.py: min_lr 1e-6'), 'clip': (3.0, 'main.py'),
        'drop_path': (0.1, 'vision_transformer.py'), 'decay_tokens': (True, 'utils.py: only biases and 1-d parameters skip decay'),
        'crop_scale': ((0.05, 1.0), 'datasets_utils.py'), 'jitter': (0.1, 'datasets_utils.py'), 'hue': (0.01, 'datasets_utils.py'),
        'jitter_p': (0.3, 'datasets_utils.py'), 'blur_p': (0.1, 'datasets_utils.py'), 'grayscale_p': (0.0, 'datasets_utils.py'),
        'schedule': ('warmup_cosine', 'main.py'), 'beta2': (0.999, 'main.py: AdamW defaults')},
    'mae@he2021': {
        'arch': ('base_224', '§4: ViT-B/16'), 'base_lr': (1.5e-4, 'A.1'), 'wd': (0.05, 'A.1'), 'beta2': (0.95, 'A.1'),
        'warmup': (40/800, 'A.1'), 'epochs': (800, '§4'), 'mask_ratio': (0.75, '§3'), 'decoder_dim': (512, 'Table 1b'),
        'decoder_depth': (8, 'Table 1a'), 'decoder_heads': (16, 'models_mae.py'), 'norm_pix': (True, 'Table 1d'), 'alpha': (0.0, '§3'),
        'crop_scale': ((0.2, 1.0), 'A.1'), 'flip': (0.5, 'A.1'), 'jitter': (0.0, 'A.1: no colour jitter'), 'lr_end': (0.0, 'main_pretrain.py'),
        'clip': (None, 'A.1'), 'drop_path': (0.0, 'A.1'), 'dummy_token': (False, '§3'), 'decoder_block': ('vit', 'models_mae.py')},
    'mae@tan2024': {
        'arch': ('lite_36', '§3, §3.1'), 'base_lr': (1.5e-4, 'Table 1'), 'wd': (0.05, 'Table 1'), 'warmup': (400/4000, 'Table 1'),
        'epochs': (4000, 'Table 1'), 'crop_scale': ((0.6, 1.0), 'Table 1'), 'flip': (0.5, 'Table 1'), 'alpha': (0.1, 'Table 1, Eq. 1'),
        'mask_ratio': (0.75, '§2'), 'decoder_dim': (192, '§3.1'), 'decoder_depth': (4, '§3.1'), 'decoder_heads': (3, '§3.1'),
        'decoder_block': ('lite', '§3.1'), 'dummy_token': (True, '§3'), 'schedule': ('warmup_cosine', 'Table 1'), 'jitter': (0.0, 'Table 1')},
    'simmim@xie2021': {
        'arch': ('base_224', '§4.3'), 'base_lr': (1e-4*256/512, 'config: 1e-4 per 512'), 'wd': (0.05, 'config'), 'warmup': (10/800, 'config'),
        'epochs': (800, 'config'), 'clip': (5.0, 'config.py'), 'drop_path': (0.1, 'config'), 'mask_ratio': (0.6, '§3.1'), 'mask': ('random', '§3.1'),
        'mask_cells': (7, '§3.1: 32-px mask patches at 224 px'), 'crop_scale': ((0.67, 1.0), 'data_simmim.py'), 'flip': (0.5, 'data_simmim.py'),
        'jitter': (0.0, 'data_simmim.py'), 'decay_tokens': (False, 'optimizer.py'), 'beta2': (0.999, 'config.py')},
    'finetune@gmml2022': {
        'arch': ('tiny_224', 'GMML §3.2'), 'epochs': (200, 'GMML §3.2'), 'flip': (0.5, 'GMML §3.1'), 'augment': ('autoaugment', 'GMML §3.1'),
        'mixup': (0.8, 'GMML §3.1; DeiT main.py'), 'crop_scale': ((0.08, 1.0), 'DeiT via timm'), 'base_lr': (5e-4*256/512, 'DeiT main.py'),
        'wd': (0.05, 'DeiT'), 'warmup': (5/200, 'DeiT: 5 epochs'), 'lr_end': (1e-5/5e-4, 'DeiT: min_lr 1e-5'), 'label_smoothing': (0.1, 'DeiT'),
        'drop_path': (0.1, 'DeiT'), 'pool': ('cls', 'DeiT'), 'schedule': ('warmup_cosine', 'DeiT'), 'layer_decay': (1.0, 'DeiT')},
    'finetune@tan2024': {
        'arch': ('lite_36', '§3'), 'pool': ('dummy', '§3.3'), 'base_lr': (1e-3, 'Table 2'), 'layer_decay': (0.75, 'Table 2'), 'wd': (0.05, 'Table 2'),
        'epochs': (300, 'Table 2'), 'warmup': (20/300, 'Table 2'), 'schedule': ('warmup_cosine', 'Table 2'), 'crop_scale': ((0.8, 1.0), 'Table 2'),
        'flip': (0.5, 'Table 2'), 'augment': ('autoaugment', 'Table 2')},
    'finetune@floros2024': {
        'lr': (1e-4, '§3.1'), 'wd': (0.0, '§3.1: Adam'), 'epochs': (100, '§3.1'), 'schedule': ('constant', '§3.1: none stated'),
        'warmup': (0.0, '§3.1'), 'drloc': (0.1, 'Tables 4.3, 4.6'), 'me': (0.1, 'Tables 4.3, 4.6'), 'crop_scale': (None, '§3.1: none stated')},
}

PAPER_NAMES = [n for n in NAMED_RECIPES if not n.endswith('@v1')]

def test_every_paper_recipe_is_transcribed():
    assert sorted(PAPERS) == sorted(PAPER_NAMES) == sorted(RECIPE_SOURCES)

@pytest.mark.parametrize('name', sorted(PAPERS))
def test_recipe_matches_its_paper(name):
    r = get_recipe(name)
    for f, (want, where) in PAPERS[name].items():
        got = getattr(r, f)
        if isinstance(want, float): assert got is not None and math.isclose(got, want, rel_tol=1e-9), (name, f, got, want, where)
        else: assert got == want, (name, f, got, want, where)

def test_aliases_are_unambiguous():
    assert RECIPE_ALIASES == {'gmml@paper': 'gmml@atito2022', 'simmim@paper': 'simmim@xie2021'}
    for bad in ('mae@paper', 'finetune@paper'):
        with pytest.raises(ValueError, match='recipe must be one of'): get_recipe(bad)

def test_lite_encoder_is_tans():
    "Tan 2024 §3.1: 12 blocks of 192-d, 3 heads, MLP ×2 with ReLU, dropout 0.1; 144 patches of 3 px; no class token."
    e = create_encoder('lite_36')
    assert (len(e.blocks), e.embed_dim, e.blocks[0].attn.num_heads, e.has_class_token) == (12, 192, 3, False)
    assert e.patch_embed.num_patches == 144 and e.blocks[0].mlp.fc1.out_features == 384
    assert isinstance(e.blocks[0].mlp.act, torch.nn.ReLU) and e.blocks[0].mlp.drop2.p == 0.1

# one training step of every named recipe, on tiny data at the recipe's image size (the encoder cut to 1 block)
def _tiny(name):
    r = get_recipe(name)
    size = ENCODER_PRESETS[r.arch]['img_size'] if r.arch else 32
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, size, size, generator=g)
    return r, x, (torch.arange(16) % 2)

@pytest.mark.parametrize('name', sorted(NAMED_RECIPES))
def test_one_step_of_each_named_recipe(name):
    from gmml_fast.data import tensor_dls
    from gmml_fast.learner import gmml_learner, mae_learner, simmim_learner, finetune_learner
    r, x, y = _tiny(name)
    enc = dict(depth=1) if r.arch else dict(depth=1, patch_size=4)
    arch = None if r.arch else 'nano_32'
    if r.method == 'finetune':
        dls = tensor_dls(x, x[:8], y, y[:8], vocab=['a', 'b'], bs=8)
        learn = finetune_learner(dls, arch=arch, recipe=name, encoder_kwargs=enc, seed=0, epochs=1)
    else:
        build = dict(gmml=gmml_learner, mae=mae_learner, simmim=simmim_learner)[r.method]
        learn = build(tensor_dls(x, x[:8], bs=8), arch, recipe=name, encoder_kwargs=enc, seed=0, epochs=1)
    assert learn.recipe == r.replace(epochs=1)
    if r.arch: assert tuple(learn.dls.one_batch()[0].shape[-2:]) == (ENCODER_PRESETS[r.arch]['img_size'],)*2
    learn.fit_recipe()
    losses = [float(l) for l in learn.recorder.losses]
    assert len(losses) == 2 and all(math.isfinite(l) for l in losses)

@pytest.mark.parametrize('name', ['gmml@atito2022', 'mae@he2021', 'mae@tan2024', 'simmim@xie2021'])
def test_cli_pretrains_each_paper_recipe_on_fakedata(tmp_path, name):
    "`python -m gmml_fast.train pretrain --recipe NAME --data FakeData --epochs 1`, cut to one block and a few images."
    r = subprocess.run([sys.executable, '-m', 'gmml_fast.train', 'pretrain', '--recipe', name, '--data', 'FakeData',
                        '--data_root', str(tmp_path/'data'), '--epochs', '1', '--depth', '1', '--fraction', '0.02', '--bs', '8',
                        '--n_valid', '8', '--monitor', '0', '--no-show', '--out', str(tmp_path/'out')],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = list((tmp_path/'out').iterdir())
    meta = json.loads((run/'config.json').read_text())
    rec = get_recipe(name)
    assert meta['recipe']['base'] == name and meta['recipe']['fields']['epochs'] == 1 and meta['resolved']['arch'] == rec.arch
    assert meta['resolved']['size'] == ENCODER_PRESETS[rec.arch]['img_size']

def test_cli_finetunes_tan2024_with_crops_flips_and_the_whole_test_split(tmp_path):
    "`finetune --recipe finetune@tan2024`: its crops and flips, warm-up + cosine at constant β₁ (fit_warmup_cosine), accuracy on every test image."
    r = subprocess.run([sys.executable, '-m', 'gmml_fast.train', 'finetune', '--recipe', 'finetune@tan2024', '--data', 'FakeData',
                        '--data_root', str(tmp_path/'data'), '--epochs', '1', '--depth', '1', '--label_fraction', '0.1', '--bs', '16',
                        '--out', str(tmp_path/'out')], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = list((tmp_path/'out').iterdir())
    res, meta = json.loads((run/'result.json').read_text()), json.loads((run/'config.json').read_text())
    assert res['evaluated_on'] == f"all {meta['valid_images']} test images" and meta['config']['n_valid'] is None
    fields = meta['recipe']['fields']
    assert (tuple(fields['crop_scale']), fields['flip'], fields['augment'], fields['pool']) == ((0.8, 1.0), 0.5, 'autoaugment', 'dummy')
    ck = torch.load(run/'resume.pth', map_location='cpu', weights_only=False)
    assert ck['fit_kwargs']['fit'] == 'fit_warmup_cosine' and ck['fit_kwargs']['div_final'] == math.inf

"The command line: `python -m gmml_fast.train pretrain` end to end, help texts, clear errors."
import pytest
import json, subprocess, sys

def run(*args, timeout=900):
    return subprocess.run([sys.executable, '-m', 'gmml_fast.train', *args], capture_output=True, text=True, timeout=timeout)

@pytest.mark.slow
def test_pretrain_writes_a_run_folder(tmp_path, capsys):
    "The entry point in a new interpreter (MAE, options recorded, the k-NN column); a second run, in this process, leaves the first alone. (GMML pretraining and finetuning end to end: nbs/97_runs.ipynb.)"
    r = run('pretrain', '--method', 'mae', '--out', str(tmp_path), '--depth', '2', '--epochs', '1', '--fraction', '0.01',
            '--n_valid', '200', '--bs', '64', '--no-augment', '--clip', 'none')
    assert r.returncode == 0, r.stderr[-2000:]
    (run_dir,) = list(tmp_path.iterdir())
    for f in ('encoder.safetensors', 'models/checkpoint.pth', 'history.csv', 'reconstruction.png', 'config.json'):
        assert (run_dir/f).exists(), f
    res = json.loads((run_dir/'result.json').read_text())
    assert res['valid_loss_after'] < res['valid_loss_before']
    import pandas as pd
    knn = pd.read_csv(run_dir/'history.csv')['knn']                 # the k-NN monitor's column, on by default
    assert len(knn) == 1 and 0.2 < knn[0] <= 1                       # well above the 10 % of chance after one epoch
    meta = json.loads((run_dir/'config.json').read_text())
    cfg, rec = meta['config'], meta['recipe']['fields']
    assert cfg['method'] == 'mae' and cfg['overrides'] == dict(epochs=1, augment=False, clip=None)
    assert rec['augment'] is False and rec['clip'] is None and rec['beta2'] == 0.95 and meta['recipe']['name'] is None
    enc = (run_dir/'encoder.safetensors').read_bytes()
    _plain_timm_loads(run_dir)
    rc, _, err = _main(capsys, 'pretrain', '--method', 'simmim', '--out', str(tmp_path), '--depth', '1', '--epochs', '1',
                       '--fraction', '0.005', '--n_valid', '100', '--bs', '64', '--monitor', '0', '--no-show')
    assert rc == 0, err
    assert len(list(tmp_path.iterdir())) == 2 and (run_dir/'encoder.safetensors').read_bytes() == enc

def _plain_timm_loads(run_dir):
    "The run's `timm_encoder/` folder in a new interpreter that never imports gmml_fast: plain timm builds the encoder and loads exactly the weights of `encoder.safetensors`."
    code = """
import sys, timm, torch
from safetensors.torch import load_file
m = timm.create_model('local-dir:' + sys.argv[1] + '/timm_encoder', pretrained=True).eval()
ref = load_file(sys.argv[1] + '/encoder.safetensors')
sd = m.state_dict()
assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in sd), 'other weights'
cfg = timm.data.resolve_data_config({}, model=m)
print('gmml_fast' in sys.modules, timm.is_model('vit_nano_patch16_224'), tuple(m(torch.zeros(2, *cfg['input_size'])).shape))
"""
    r = subprocess.run([sys.executable, '-c', code, str(run_dir)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ['False', 'False', '(2,', '96)'], r.stdout

def _main(capsys, *args):
    "Run the command line in this process (no new interpreter): (exit code, stdout, stderr)."
    from gmml_fast.train import main
    try: rc = main(list(args))
    except SystemExit as e: rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err

def test_help_documents_every_option(capsys):
    rc, out, _ = _main(capsys, 'pretrain', '--help')
    assert rc == 0
    for opt in ('--method', '--data', '--arch', '--size', '--patch_size', '--depth', '--epochs', '--bs', '--lr', '--fraction',
                '--n_valid', '--corruption', '--align', '--ratio', '--mask_ratio', '--mask', '--augment', '--no-augment', '--warmup', '--wd', '--wd_end',
                '--clip', '--drop_path', '--precision', '--compile', '--no-compile', '--monitor', '--monitor_linear', '--strict', '--out', '--seed',
                '--download', '--show', '--no-show', '--recipe', '--base_lr', '--beta2', '--decoder_dim', '--norm_pix', '--resume', '--stop_after'):
        assert opt in out, opt
    rc, out, _ = _main(capsys, 'finetune', '--help')
    assert rc == 0
    for opt in ('--data', '--label_fraction', '--pretrained', '--arch', '--pool', '--epochs', '--lr', '--layer_decay',
                '--label_smoothing', '--mixup', '--cutmix', '--augment', '--drloc', '--me', '--mae', '--precision', '--compile', '--out',
                '--seed', '--resume', '--stop_after'):
        assert opt in out, opt
    rc, out, _ = _main(capsys, '--help')
    assert rc == 0 and 'pretrain' in out and 'finetune' in out

def test_bad_option_is_one_clear_line(tmp_path, capsys):
    rc, _, err = _main(capsys, 'pretrain', '--out', str(tmp_path), '--method', 'simclr')
    assert rc == 2 and err.strip() == "error: method must be one of gmml, mae, simmim or None (the --recipe's, else gmml), got 'simclr'"
    rc, _, err = _main(capsys, 'pretrain', '--out', str(tmp_path), '--corruption', 'fog')
    assert rc == 2 and err.startswith('error: corruption must be one of') and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())                      # nothing written for a rejected command
    assert _main(capsys, 'explode')[0] == 2
    rc, _, err = _main(capsys, 'finetune', '--pretrained', str(tmp_path/'missing'))
    assert rc == 2 and 'neither a run folder nor a weights file' in err
    rc, _, err = _main(capsys, 'pretrain', '--resume', str(tmp_path), '--epochs', '5')   # a resumed run keeps its own options
    assert rc == 2 and 'do not pass epochs with it' in err
    rc, _, err = _main(capsys, 'pretrain', '--epochs', 'two')                   # argparse's own errors are one line too
    assert rc == 2 and err.startswith("error: argument --epochs: epochs must be an integer in [1, inf), got 'two'") and len(err.strip().splitlines()) == 1
    rc, _, err = _main(capsys, 'pretrain', '--method', 'mae', '--corruption', 'comb1', '--out', str(tmp_path))
    assert rc == 2 and err.startswith('error: --corruption: not a setting of mae')
    assert not any(tmp_path.iterdir())

def test_fp8_is_refused_before_anything_exists(tmp_path):
    "The issue's check, in a new interpreter: one line, exit code 2, nothing under --out (not even the folder)."
    out = tmp_path/'X'
    r = run('pretrain', '--precision', 'fp8', '--out', str(out), timeout=300)
    assert r.returncode == 2 and r.stderr.strip() == "error: precision must be one of 32, bf16, fp16, got 'fp8'"
    assert not out.exists()

@pytest.mark.slow
def test_finetune_on_a_folder_in_the_wild(tmp_path, capsys):
    "A labeled folder with an unreadable file: one warning, the run finishes, result.json reports per-class accuracy; --strict refuses it; SimMIM pretraining on it is monitored with its class folders; finetuning adds the MAE task."
    import warnings
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    data = tmp_path/'data'
    for c, level in (('dark', 40), ('light', 215)):           # two classes a model can tell apart at once
        (data/c).mkdir(parents=True)
        for i in range(24):
            Image.fromarray(np.clip(rng.normal(level, 20, (20, 20)), 0, 255).astype(np.uint8)).convert('RGB' if i % 2 else 'L').save(data/c/f'{i}.png')
    (data/'dark'/'broken.jpg').write_bytes(b'\xff\xd8 truncated')
    rc, _, err = _main(capsys, 'finetune', '--data', str(data), '--out', str(tmp_path/'ft'))       # 1 % of 38 images: no batch of 64
    assert rc == 2 and 'fewer than one batch of bs=64: raise --label_fraction or lower --bs' in err
    import pandas as pd
    rc, _, err = _main(capsys, 'pretrain', '--data', str(data), '--method', 'simmim', '--arch', 'nano_28', '--depth', '1', '--epochs', '2',
                       '--bs', '8', '--monitor', '30', '--monitor_linear', '--no-show', '--out', str(tmp_path/'pre'))
    assert rc == 0, err
    (pre,) = list((tmp_path/'pre').iterdir())
    hist = pd.read_csv(pre/'history.csv')
    assert list(hist.columns[-3:-1]) == ['knn', 'linear'] and len(hist) == 2
    assert (hist.knn > 0.9).all() and (hist.linear > 0.9).all()      # dark vs light: the folders' labels reach the monitor
    assert json.loads((pre/'config.json').read_text())['config']['method'] == 'simmim'
    opts = ['finetune', '--data', str(data), '--label_fraction', '1', '--arch', 'nano_28', '--depth', '1', '--epochs', '2', '--bs', '8',
            '--mae', '0.1', '--out', str(tmp_path/'ft')]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        rc, out, err = _main(capsys, *opts)
    assert rc == 0, err
    assert [str(x.message) for x in w if 'unreadable' in str(x.message)][0].startswith('skipping 1 unreadable image file(s) of 49')
    (run,) = list((tmp_path/'ft').iterdir())
    res = json.loads((run/'result.json').read_text())
    assert 'mae' in pd.read_csv(run/'history.csv').columns
    assert sorted(res['per_class_accuracy']) == ['dark', 'light']
    assert res['accuracy'] >= 0.9 and min(res['per_class_accuracy'].values()) >= 0.8    # dark vs light: learned at once
    rc, _, err = _main(capsys, *opts, '--strict')
    assert rc == 2 and 'broken.jpg' in err and len(err.strip().splitlines()) == 1

"The command line: `python -m gmml_fast.train pretrain` end to end, help texts, clear errors."
import json, subprocess, sys
from pathlib import Path

def run(*args, timeout=900):
    return subprocess.run([sys.executable, '-m', 'gmml_fast.train', *args], capture_output=True, text=True, timeout=timeout)

def test_pretrain_writes_a_run_folder(tmp_path):
    r = run('pretrain', '--out', str(tmp_path), '--depth', '2', '--epochs', '1', '--fraction', '0.01', '--n_valid', '200', '--bs', '64')
    assert r.returncode == 0, r.stderr[-2000:]
    (run_dir,) = list(tmp_path.iterdir())
    for f in ('encoder.safetensors', 'models/checkpoint.pth', 'history.csv', 'reconstruction.png', 'config.json'):
        assert (run_dir/f).exists(), f
    res = json.loads((run_dir/'result.json').read_text())
    assert res['valid_loss_after'] < res['valid_loss_before']
    # a second run never touches the first one
    r2 = run('pretrain', '--method', 'mae', '--out', str(tmp_path), '--depth', '2', '--epochs', '1', '--fraction', '0.01',
             '--n_valid', '200', '--bs', '64', '--show', 'False', '--no_augment', '--clip', '0')
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert len(list(tmp_path.iterdir())) == 2 and (run_dir/'encoder.safetensors').exists()
    cfgs = {json.loads((d/'config.json').read_text())['method']: json.loads((d/'config.json').read_text())['args'] for d in tmp_path.iterdir()}
    assert cfgs['gmml']['no_augment'] is False and cfgs['mae']['no_augment'] is True and cfgs['mae']['clip'] == 0
    # finetune from the first run's folder: the architecture comes from its config
    ft_out = tmp_path/'ft'
    r3 = run('finetune', '--pretrained', str(run_dir), '--epochs', '1', '--n_valid', '200', '--out', str(ft_out), '--me', '0.1')
    assert r3.returncode == 0, r3.stderr[-2000:]
    (ft_dir,) = list(ft_out.iterdir())
    res = json.loads((ft_dir/'result.json').read_text())
    assert 0 <= res['fgsm_accuracy_1_255'] <= 1 and res['accuracy'] > 0.1     # above chance after one epoch on 600 labels
    assert (ft_dir/'classifier.safetensors').exists()

def test_help_documents_every_option():
    r = run('pretrain', '--help')
    assert r.returncode == 0
    for opt in ('--method', '--data', '--arch', '--size', '--patch_size', '--depth', '--epochs', '--bs', '--lr', '--fraction',
                '--n_valid', '--corruption', '--align', '--ratio', '--mask_ratio', '--no_augment', '--warmup', '--wd', '--wd_end',
                '--clip', '--drop_path', '--out', '--seed', '--download', '--show', '--resume', '--stop_after'):
        assert opt in r.stdout, opt
    r = run('finetune', '--help')
    assert r.returncode == 0
    for opt in ('--data', '--label_fraction', '--pretrained', '--arch', '--pool', '--epochs', '--lr', '--layer_decay',
                '--label_smoothing', '--mixup', '--cutmix', '--augment', '--drloc', '--me', '--out', '--seed', '--resume', '--stop_after'):
        assert opt in r.stdout, opt
    top = run('--help')
    assert top.returncode == 0 and 'pretrain' in top.stdout and 'finetune' in top.stdout

def test_bad_option_is_one_clear_line(tmp_path):
    r = run('pretrain', '--out', str(tmp_path), '--method', 'simclr')
    assert r.returncode == 2
    assert "method must be 'gmml' or 'mae'" in r.stderr and 'Traceback' not in r.stderr
    r = run('pretrain', '--out', str(tmp_path), '--corruption', 'fog')
    assert r.returncode == 2 and 'corruption must be one of' in r.stderr
    assert not any(tmp_path.iterdir())                      # nothing written for a rejected command
    assert run('explode').returncode == 2
    r = run('finetune', '--pretrained', str(tmp_path/'missing'))
    assert r.returncode == 2 and 'neither a run folder nor a weights file' in r.stderr

"Named datasets from the command line: `--data NAME` for pretraining and finetuning (on torchvision's FakeData, no network), every dataset named in --help, one clear line for a missing or unknown dataset."
import json
import pytest
from gmml_fast.datasets import finetune_dls

def _main(capsys, *args):
    from gmml_fast.train import main
    try: rc = main(list(args))
    except SystemExit as e: rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err

def test_help_names_every_dataset(capsys):
    from gmml_fast.datasets import DATASETS
    for cmd in ('pretrain', 'finetune'):
        rc, out, _ = _main(capsys, cmd, '--help')
        assert rc == 0 and '--data' in out and '--data_root' in out
        for name in DATASETS: assert name in out, (cmd, name)
        assert 'FakeData' in out

@pytest.mark.slow
def test_pretrain_then_finetune_on_fakedata(tmp_path, capsys):
    "`pretrain --data FakeData --epochs 1` and `finetune --data FakeData` (from that encoder), with the dataset's preset."
    rc, _, err = _main(capsys, 'pretrain', '--data', 'FakeData', '--epochs', '1', '--depth', '2', '--bs', '64',
                       '--out', str(tmp_path/'pre'), '--monitor', '200')
    assert rc == 0, err
    (run,) = (tmp_path/'pre').iterdir()
    meta, res = json.loads((run/'config.json').read_text()), json.loads((run/'result.json').read_text())
    assert meta['config']['data'] == 'FakeData' and meta['config']['arch'] == 'tiny_32' and meta['resolved']['size'] == 32
    assert meta['train_images'] == 256 and (run/'encoder.safetensors').is_file()          # --fraction 0.5 of 512 images
    assert res['valid_loss_after'] < res['valid_loss_before']
    rc, _, err = _main(capsys, 'finetune', '--data', 'FakeData', '--pretrained', str(run), '--epochs', '1', '--bs', '32',
                       '--label_fraction', '0.25', '--out', str(tmp_path/'ft'))
    assert rc == 0, err
    (ft,) = (tmp_path/'ft').iterdir()
    meta = json.loads((ft/'config.json').read_text())

    assert meta['train_images'] == len(finetune_dls('FakeData', bs=32, label_fraction=0.25).train.images)   # a quarter of each class
    assert meta['resolved']['arch'] == 'tiny_32' and 0 <= json.loads((ft/'result.json').read_text())['accuracy'] <= 1

def test_missing_or_unknown_dataset_is_one_line(tmp_path, capsys):
    rc, _, err = _main(capsys, 'pretrain', '--data', 'cifar10', '--data_root', str(tmp_path/'empty'), '--out', str(tmp_path/'out'))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and 'download' in err and 'CIFAR-10' in err, err
    rc, _, err = _main(capsys, 'finetune', '--data', 'imagenet21k', '--out', str(tmp_path/'out'))
    assert rc == 2 and err.startswith('error: data must be one of') and len(err.strip().splitlines()) == 1
    assert not (tmp_path/'out').exists() or not any((tmp_path/'out').iterdir())      # nothing written for a rejected command

@pytest.mark.slow
def test_paper_recipe_for_cifar10_runs_in_its_quick_form(tmp_path):
    "benchmarks/paper_recipe_cifar10.sh --quick: the paper's two recipes on FakeData, one epoch each, on a CPU."
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run(['bash', str(root/'benchmarks'/'paper_recipe_cifar10.sh'), '--quick', '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    (pre,), (ft,) = (tmp_path/'pretrain').iterdir(), (tmp_path/'finetune').iterdir()
    meta = json.loads((pre/'config.json').read_text())
    cfg, rec = meta['config'], meta['recipe']['fields']
    assert cfg['arch'] == 'tiny_32' and rec['corruption'] == 'gmml_paper' and cfg['data'] == 'FakeData' and rec['epochs'] == 1
    assert meta['recipe']['name'] is None and meta['recipe']['base'] == 'gmml@atito2022'      # the paper's, one epoch
    fmeta = json.loads((ft/'config.json').read_text())
    assert (ft/'result.json').is_file() and fmeta['resolved']['pretrained'].endswith('encoder.safetensors')
    assert fmeta['recipe']['base'] == 'finetune@gmml2022' and fmeta['recipe']['fields']['mixup'] == 0.8
    r = subprocess.run(['bash', str(root/'benchmarks'/'paper_recipe_cifar10.sh'), '--bogus'], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith('error: unknown option --bogus')

"""Faults of shared clusters, tried on real runs: damaged files in the workdir, a full disk while saving,
two processes on one workdir; and what a researcher watches while a run trains (TensorBoard images at
every validation, counts logged as counts, titles without repetition). SLURM requeue: test_sweeps."""

import json
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import time
import types

import pytest
from tensorboardX.proto import event_pb2

import vae_jax
from vae_jax import errors
from vae_jax import plots
from vae_jax import train
from vae_jax import workdir as workdir_lib
from vae_jax import writers

ROOT = pathlib.Path(__file__).resolve().parents[1]
_DIGITS = ['--config=configs/digits.py', '--config.steps_per_dispatch=10', '--config.dispatch=scan',
           '--config.log_every_steps=10', '--config.checkpoint_every_steps=20', '--config.keep_checkpoints=100',
           '--config.eval.num_importance_samples=5', '--config.eval.measures=false']


def _command(module, *args, background=False):
  cmd = [sys.executable, '-m', module, *map(str, args)]
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  if background:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _last_line(proc) -> str:
  return proc.stderr.strip().splitlines()[-1]


def _copy(finished, tmp_path):
  copy = tmp_path / 'run'
  shutil.copytree(finished, copy)
  return copy


def _listing(workdir):
  return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in workdir.rglob('*') if p.is_file()}


def test_a_torn_last_metrics_line_is_dropped_and_the_run_goes_on(finished, tmp_path, make_config, caplog):
  copy = _copy(finished, tmp_path)
  (copy / 'eval.json').unlink()
  with open(copy / writers.METRICS_FILE, 'a', encoding='utf-8') as f:
    f.write('{"step": 80, "validation/elbo_n')  # what a crash mid-write leaves, no newline
  with caplog.at_level('WARNING'):
    results = train.train_and_evaluate(make_config(num_epochs=5), copy)
  assert results['step'] == 100
  assert any('its last line is damaged' in r.getMessage() for r in caplog.records)
  lines = (copy / writers.METRICS_FILE).read_text().splitlines()
  assert all(json.loads(line) for line in lines)  # every line readable again
  assert max(r['step'] for r in writers.read_metrics(copy)) == 100


def test_a_damaged_config_json_is_one_line_for_every_command(finished, tmp_path):
  copy = _copy(finished, tmp_path)
  text = (copy / 'config.json').read_text()
  (copy / 'config.json').write_text(text[:len(text) // 2])  # a copy cut short
  before = _listing(copy)
  for proc in (_command('vae_jax.main', *_DIGITS, f'--workdir={copy}'),
               _command('vae_jax.evaluate', f'--workdir={copy}', '--num_importance_samples=2')):
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    line = _last_line(proc)
    assert line.startswith(f'error: {copy}/config.json is damaged (not valid JSON') and 'restore it' in line, line
  with pytest.raises(errors.DamagedFileError, match='config.json is damaged'):
    vae_jax.load_run(copy)
  assert _listing(copy) == before  # nothing else in the workdir touched


def test_a_damaged_eval_json_is_reported_and_rebuilt(finished, tmp_path, make_config, caplog):
  copy = _copy(finished, tmp_path)
  (copy / 'eval.json').write_text('{"elbo_nats": -3')
  with pytest.raises(errors.DamagedFileError, match=r'eval.json is damaged .*python -m vae_jax.evaluate'):
    plots.read_eval(copy)
  with caplog.at_level('WARNING'):
    results = train.train_and_evaluate(make_config(), copy)  # finished: it only evaluates again
  assert any('eval.json is damaged' in r.getMessage() for r in caplog.records)
  assert plots.read_eval(copy)['elbo_nats'] == pytest.approx(results['elbo_nats'])


@pytest.fixture
def small_disk(tmp_path):
  """A 1.2 MB tmpfs (root only): a run's first checkpoint fits, its second does not."""
  mount = tmp_path / 'disk'
  mount.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1200k', 'tmpfs', str(mount)],
                    capture_output=True).returncode:
    pytest.skip('mounting a tmpfs needs root')
  yield mount
  subprocess.run(['umount', str(mount)], check=False)


def test_a_full_disk_while_saving_is_one_line_and_the_rerun_resumes(small_disk):
  workdir = small_disk / 'run'
  args = [*_DIGITS, '--config.num_epochs=3', f'--workdir={workdir}']
  proc = _command('vae_jax.main', *args)
  assert proc.returncode == errors.DISK_FULL_EXIT_CODE, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]  # orbax's and its threads' are said in one line each
  assert _last_line(proc) == (f'disk full: no space left on the device while saving the checkpoint of step 40 in '
                              f'{workdir}; the last good checkpoint is step 20. Free space and rerun the same '
                              'command to continue from it')
  assert (workdir / 'checkpoints' / '40.orbax-checkpoint-tmp').exists()
  subprocess.run(['mount', '-o', 'remount,size=16m', str(small_disk)], check=True)  # space freed
  proc = _command('vae_jax.main', *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Removing' in proc.stderr and '40.orbax-checkpoint-tmp' in proc.stderr
  assert 'Resumed from the checkpoint at step 20' in proc.stderr
  assert not list((workdir / 'checkpoints').glob('*.orbax-checkpoint-tmp*'))
  assert json.loads((workdir / 'eval.json').read_text())['step'] == 60


def test_a_second_launch_is_refused_and_a_crash_leaves_no_lock(tmp_path):
  workdir = tmp_path / 'run'
  first = _command('vae_jax.main', *_DIGITS, '--config.num_epochs=500', f'--workdir={workdir}', background=True)
  try:
    deadline = time.time() + 300
    while time.time() < deadline and not list((workdir / 'checkpoints').glob('[0-9]*')):
      assert first.poll() is None, first.communicate()[1][-2000:]
      time.sleep(0.5)
    second = _command('vae_jax.main', *_DIGITS, '--config.num_epochs=500', f'--workdir={workdir}')
    assert second.returncode == 2 and 'Traceback' not in second.stderr, second.stderr[-2000:]
    line = _last_line(second)
    assert f'is in use by process {first.pid} on host {socket.gethostname()}' in line, line
    assert first.poll() is None  # the first run trains on
    run = vae_jax.load_run(workdir)  # readers never take the lock
    assert run.step >= 20
  finally:
    first.kill()  # a crash: no chance to clean up
    first.communicate()
  lock = workdir_lib.RunLock(workdir).acquire()  # the operating system released it
  lock.release()


def _events(workdir):
  """Every event of the run's TensorBoard files (TFRecord framing: length, its CRC, data, its CRC)."""
  events = []
  for path in pathlib.Path(workdir).glob('events.out.tfevents.*'):
    data = path.read_bytes()
    i = 0
    while i + 12 <= len(data):
      (length,) = struct.unpack('<Q', data[i:i + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[i + 12:i + 12 + length])
      events.append(event)
      i += 12 + length + 4
  return events


def test_tensorboard_gets_images_at_every_validation(finished):
  steps = {}
  for e in _events(finished):
    for v in e.summary.value:
      if v.HasField('image'):
        steps.setdefault(v.tag, set()).add(e.step)
  # the tiny run validates every epoch of 20 steps
  assert steps.get('samples', set()) >= {20, 40, 60, 80} and steps.get('reconstructions', set()) >= {20, 40, 60, 80}


def test_counts_are_logged_as_counts():
  assert train._format_metrics({'active_units': 8.0, 'active_units_group_1': 3, 'elbo_nats': -1.234}) == \
      'active_units 8, active_units_group_1 3, elbo_nats -1.23'


@pytest.mark.parametrize('workdir,expected', [
    ('runs/fashion_mnist', 'vae mlp on fashion_mnist, latent_dim=50, step 7'),
    ('runs/beta=2', 'beta=2: vae mlp on fashion_mnist, latent_dim=50, step 7'),
])
def test_titles_name_the_run_once(workdir, expected):
  run = types.SimpleNamespace(workdir=workdir, step=7, model=types.SimpleNamespace(latent_dim=50),
                              config=types.SimpleNamespace(model=types.SimpleNamespace(kind='vae', encoder='mlp'),
                                                           data=types.SimpleNamespace(name='fashion_mnist')))
  assert plots._describe(run) == expected

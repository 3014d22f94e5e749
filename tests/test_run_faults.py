"""Faults of shared clusters, tried on real runs: damaged files in the workdir, a full disk while saving,
two processes on one workdir; and what a researcher watches while a run trains (TensorBoard images at
every validation, counts logged as counts, titles without repetition). SLURM requeue: test_sweeps."""

import functools
import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

import vae_jax
from vae_jax import cli
from vae_jax import errors
from vae_jax.coding import bitsback
from vae_jax.runs import evaluate as evaluate_lib
from vae_jax.runs import workdir as workdir_lib
from vae_jax.runs import writers
from vae_jax.runtime import signals
from vae_jax.training import train
from vae_jax.viz import plots
from vae_jax.viz import report

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


# ---------------------------------------------------------------- a workdir that cannot be one


def _unwritable(path, monkeypatch):
  """`path` made unwritable: by its mode, and for root (whom modes do not stop) by what access(2) answers."""
  path.chmod(0o555)
  if os.geteuid() == 0:
    real = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode: real(p, mode) and pathlib.Path(p) != path)


@pytest.mark.parametrize('case,expected', [
    ('file', 'workdir {tmp}/FILE is a file, not a directory; give --workdir a directory'),
    ('under_a_file', 'workdir {tmp}/FILE/run cannot be created: {tmp}/FILE is a file, not a directory'),
    ('unwritable_parent', 'workdir {tmp}/locked/run cannot be created: {tmp}/locked is not writable by this user '
     '(permission denied)'),
    ('unwritable', 'workdir {tmp}/locked is not writable by this user (permission denied)'),
])
def test_a_workdir_that_cannot_be_one_is_one_line_before_anything_is_read(tmp_path, make_config, monkeypatch,
                                                                         case, expected):
  (tmp_path / 'FILE').write_text('not a run\n')
  (tmp_path / 'locked').mkdir()
  _unwritable(tmp_path / 'locked', monkeypatch)
  workdir = {'file': tmp_path / 'FILE', 'under_a_file': tmp_path / 'FILE' / 'run',
             'unwritable_parent': tmp_path / 'locked' / 'run', 'unwritable': tmp_path / 'locked'}[case]
  monkeypatch.setattr(vae_jax.data, 'load', lambda config: pytest.fail('data read for an unusable workdir'))
  with pytest.raises(errors.WorkdirError) as raised:
    train.train_and_evaluate(make_config(), workdir)
  assert str(raised.value).startswith(expected.format(tmp=tmp_path)) and '\n' not in str(raised.value)
  assert (tmp_path / 'FILE').read_text() == 'not a run\n' and not list((tmp_path / 'locked').iterdir())
  (tmp_path / 'locked').chmod(0o755)


def test_a_workdir_that_mkdir_refuses_anyway_is_one_line(tmp_path, monkeypatch):
  """What check_usable cannot foresee (a read-only file system, a race) is said as well."""
  def refuse(self, *args, **kwargs):
    raise PermissionError(13, 'Permission denied', str(self))
  monkeypatch.setattr(pathlib.Path, 'mkdir', refuse)
  with pytest.raises(errors.WorkdirError, match=r'workdir .*/run cannot be created: Permission denied \('):
    workdir_lib.RunLock(tmp_path / 'run').acquire()


def test_readers_say_a_file_is_not_a_run_directory(tmp_path):
  path = tmp_path / 'FILE'
  path.write_text('not a run\n')
  message = f'{path} is a file, not a vae_jax run directory'
  for read in (vae_jax.load_run, report.write_report, lambda p: evaluate_lib.evaluate_run(p, 5)):
    with pytest.raises(errors.RunNotFound) as raised:
      read(path)
    assert str(raised.value) == message
  assert path.read_text() == 'not a run\n'


def test_evaluate_refuses_a_run_directory_it_cannot_write_before_evaluating(finished, tmp_path, monkeypatch):
  run = tmp_path / 'run'
  shutil.copytree(finished, run)
  _unwritable(run, monkeypatch)
  with pytest.raises(errors.WorkdirError, match=f'workdir {run} is not writable by this user, and evaluate'):
    evaluate_lib.evaluate_run(run, 5)
  run.chmod(0o755)


# ---------------------------------------------------------------- signals, for every command


def _cli_run(command, monkeypatch, capsys) -> tuple[int, str]:
  """vae_jax.cli.run(command) in this process: its exit code and its stderr."""
  monkeypatch.setattr(sys, 'argv', ['vae_jax.some_command'])
  monkeypatch.setattr(threading, 'excepthook', threading.excepthook)  # cli.run wraps both: put them back after
  monkeypatch.setattr(sys, 'unraisablehook', sys.unraisablehook)
  with pytest.raises(SystemExit) as exited:
    cli.run(command)
  return exited.value.code, capsys.readouterr().err


def test_a_signal_stops_any_command_with_75_and_one_line(monkeypatch, capsys):
  before = {s: signal.getsignal(s) for s in signals.SIGNALS}

  def anywhere():  # a command with no stop points: stopped where it stands
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    pytest.fail('SIGTERM did not stop the command')
  code, err = _cli_run(anywhere, monkeypatch, capsys)
  assert code == errors.PREEMPTED_EXIT_CODE == 75
  assert err.strip().splitlines()[-1] == ('preempted: SIGTERM received: stopped before finishing, no file '
                                          'half-written; rerun the same command to continue')
  assert {s: signal.getsignal(s) for s in signals.SIGNALS} == before  # the handlers are put back

  def at_stop_points():  # inside `deferred`, the signal waits for the next stop point
    with signals.deferred('after this batch'):
      signals.stop_point('saved nothing yet')
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.1)
      signals.stop_point('saved the first 2 of 3 batches')
      pytest.fail('the stop point did not stop the command')
  code, err = _cli_run(at_stop_points, monkeypatch, capsys)
  assert code == 75 and err.strip().splitlines()[-1] == (
      'preempted: SIGINT received: saved the first 2 of 3 batches; rerun the same command to continue')


_TWO_SIGNALS = """
import os, signal, sys, time
from vae_jax.runtime import signals
with signals.preemptible():
  with signals.StopSignals() if sys.argv[1] == 'training' else signals.deferred('after this batch'):
    os.kill(os.getpid(), signal.SIGTERM)  # the first: recorded, the command goes on to its stop point
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
"""


@pytest.mark.parametrize('waiting', ['training', 'deferred'])
def test_a_second_signal_kills_at_once(waiting):
  proc = subprocess.run([sys.executable, '-c', _TWO_SIGNALS, waiting], cwd=ROOT, capture_output=True, text=True,
                        timeout=60, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode == -signal.SIGTERM, proc.stderr[-2000:]  # killed by it, as if no handler


def test_a_stopped_command_leaves_no_half_file(finished, tmp_path, monkeypatch):
  """SIGTERM mid-write (here: the report's second picture, the compressed file): the file under its own name is
  the previous one or none, and no temporary file is left."""
  copy = _copy(finished, tmp_path)
  (copy / 'report').mkdir()
  (copy / 'report' / 'b.png').write_bytes(b'the previous picture')

  def draw(path, stop):
    with open(path, 'wb') as f:
      f.write(b'half a picture')
      if stop:
        os.kill(os.getpid(), signal.SIGTERM)
    return path
  monkeypatch.setattr(report, 'pictures', lambda *args: [
      report.Picture(name, name, '', functools.partial(draw, stop=stop)) for name, stop in (('a.png', False),
                                                                                            ('b.png', True))])
  with signals.preemptible(), pytest.raises(signals.Interrupted):
    report.write_report(copy)
  assert sorted(p.name for p in (copy / 'report').iterdir()) == ['a.png', 'b.png']
  assert (copy / 'report' / 'b.png').read_bytes() == b'the previous picture'

  real_fsync = os.fsync
  def fsync_then_signal(fd):
    real_fsync(fd)
    os.kill(os.getpid(), signal.SIGTERM)
  monkeypatch.setattr(os, 'fsync', fsync_then_signal)
  header = bitsback.Header(config_sha256='', params_sha256='', step=0, image_shape=(1,), dtype='uint8', scale=1,
                           bucket_bits=8, batch_size=1, backend='cpu')
  with signals.preemptible(), pytest.raises(signals.Interrupted):
    bitsback.write_file(tmp_path / 'out.vbb', header, np.arange(5))
  assert not list(tmp_path.glob('out.vbb*'))


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

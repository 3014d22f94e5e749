"""Sweeps: the helpers and point names, the command lines and SLURM script, the
local scheduler end to end on digits (parallel, killed and resumed, a failing
point), and the report."""

import csv
import json
import os
import pathlib
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from vae_jax import config_lib
from vae_jax import errors
from vae_jax.experiments import report as sweep_report
from vae_jax.experiments import sweeps

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE = ROOT / 'experiments' / 'smoke_sweep.py'
SMOKE_NAMES = ['beta=0.5,latent_dim=2', 'beta=0.5,latent_dim=4', 'beta=2.0,latent_dim=2', 'beta=2.0,latent_dim=4']


def _env(**extra):
  return dict(os.environ, JAX_PLATFORMS='cpu', **extra)


def _sweep_cmd(*args):
  return [sys.executable, '-m', 'vae_jax.sweep', *map(str, args)]


def _sweep(*args, env=None, timeout=600):
  return subprocess.run(_sweep_cmd(*args), cwd=ROOT, env=env or _env(), capture_output=True, text=True,
                        timeout=timeout)


def _write_sweep(tmp_path, body, name='my_sweep'):
  path = tmp_path / f'{name}.py'
  path.write_text(textwrap.dedent(body))
  return path


# ---- Pure functions --------------------------------------------------------------------------


def test_product_zip_chain():
  beta = sweeps.sweep('model.beta', [0.5, 1.0])
  latent = sweeps.sweep('model.latent_dim', [2, 10, 32])
  grid = sweeps.product(beta, latent)
  assert len(grid) == 6
  assert grid[0] == {'model.beta': 0.5, 'model.latent_dim': 2}
  assert grid[1] == {'model.beta': 0.5, 'model.latent_dim': 10}  # the last axis varies fastest
  assert list(grid[0]) == ['model.beta', 'model.latent_dim']
  paired = sweeps.zip(sweeps.sweep('model.encoder', ['mlp', 'conv']),
                      sweeps.sweep('model.hidden_sizes', [(500, 500), (32, 64)]))
  assert paired == [{'model.encoder': 'mlp', 'model.hidden_sizes': (500, 500)},
                    {'model.encoder': 'conv', 'model.hidden_sizes': (32, 64)}]
  assert sweeps.chain(beta, latent) == beta + latent
  with pytest.raises(errors.UserError, match='same length'):
    sweeps.zip(beta, latent)
  with pytest.raises(errors.UserError, match='set twice'):
    sweeps.product(beta, sweeps.sweep('model.beta', [2.0]))


def test_point_names_are_deterministic_safe_and_distinct():
  base = config_lib.base_config()
  assert sweeps.point_name({'model.beta': 0.25, 'model.latent_dim': 2}, base) == 'beta=0.25,latent_dim=2'
  assert sweeps.point_name({}, base) == 'base'
  # Two fields end in num_importance_samples (model., eval.): those are spelled in full.
  assert sweeps.point_name({'model.num_importance_samples': 5}, base) == 'model.num_importance_samples=5'
  assert sweeps.point_name({'model.hidden_sizes': (500, 500)}, base) == 'hidden_sizes=500x500'
  assert sweeps.point_name({'data.idx_dir': '/data/my mnist'}, base) == 'idx_dir=_data_my_mnist'
  assert sweeps.point_name({'model.beta': 1e-05}) == 'beta=1e-05'
  long = sweeps.point_name({f'f{i}': 'v' * 30 for i in range(20)})
  assert len(long) <= 200 and long == sweeps.point_name({f'f{i}': 'v' * 30 for i in range(20)})
  names = {sweeps.point_name(p, base) for p in sweeps.product(sweeps.sweep('model.beta', [0.25, 0.5, 1.0, 2.0]),
                                                               sweeps.sweep('model.latent_dim', [2, 10]))}
  assert len(names) == 8 and all('/' not in n and ' ' not in n for n in names)


def test_flag_values_parse_back_as_config_flags_reads_them(tmp_path):
  assert sweeps.flag_value((500, 500)) == '(500,500)'
  assert sweeps.flag_value((64,)) == '(64,)'
  assert sweeps.flag_value(0.25) == '0.25'
  assert sweeps.flag_value(True) == 'true'
  path = _write_sweep(tmp_path, f"""
      BASE_CONFIG = {str(ROOT / 'configs' / 'digits.py')!r}
      FIXED = {{'num_epochs': 2}}
      def get_sweep():
        return [{{'model.hidden_sizes': (64,), 'learning_rate': 3e-4, 'model.activation': 'tanh'}},
                {{'model.hidden_sizes': (32, 16), 'model.beta': 4.0}}]
      """)
  s = sweeps.load(path, tmp_path / 'runs')
  assert [p.name for p in s.points] == ['hidden_sizes=64,learning_rate=0.0003,activation=tanh',
                                        'hidden_sizes=32x16,beta=4.0']
  assert s.points[1].workdir == str(tmp_path / 'runs' / 'my_sweep' / 'hidden_sizes=32x16,beta=4.0')
  command = s.points[1].command
  assert command[1:3] == ('-m', 'vae_jax.main')
  assert f'--workdir={s.points[1].workdir}' in command
  assert command[-3:] == ('--config.num_epochs=2', '--config.model.hidden_sizes=(32,16)', '--config.model.beta=4.0')
  # The parse that `load` checks with is the one vae_jax.main does.
  config = sweeps._parse_config(s.base_config, command[5:])  # pylint: disable=protected-access
  assert config.model.hidden_sizes == (32, 16) and config.model.beta == 4.0 and config.num_epochs == 2
  assert not (tmp_path / 'runs').exists(), 'loading a sweep must not write anything'


def _fake_run(workdir, total_steps, eval_step=None, returncode='absent', checkpoint=None):
  workdir.mkdir(parents=True)
  (workdir / 'config.json').write_text(json.dumps({'model': {'beta': 1.0}, 'resolved': {'total_steps': total_steps}}))
  if eval_step is not None:
    (workdir / 'eval.json').write_text(json.dumps({'step': eval_step, 'nll_nats': 40.0, 'recon_nats': -39.0,
                                                   'kl_nats': 2.0, 'elbo_nats': -41.0}))
  if returncode != 'absent':
    (workdir / 'launch.json').write_text(json.dumps({'returncode': returncode}))
  if checkpoint is not None:
    (workdir / 'checkpoints' / str(checkpoint)).mkdir(parents=True)


def test_finished_means_eval_json_at_the_last_step(tmp_path):
  _fake_run(tmp_path / 'done', 60, eval_step=60)
  _fake_run(tmp_path / 'evaluated_early', 60, eval_step=40)   # e.g. `vae_jax.evaluate` on a running run
  _fake_run(tmp_path / 'failed', 60, returncode=1, checkpoint=20)
  _fake_run(tmp_path / 'killed', 60, returncode=None, checkpoint=40)
  assert sweeps.is_finished(tmp_path / 'done')
  assert not sweeps.is_finished(tmp_path / 'evaluated_early')
  assert sweeps.status(tmp_path / 'done') == 'finished'
  assert sweeps.status(tmp_path / 'failed') == 'failed (exit 1)'
  assert sweeps.status(tmp_path / 'killed') == 'unfinished (step 40 of 60)'
  assert sweeps.status(tmp_path / 'never') == 'not started'


def test_array_spec():
  assert sweeps.array_spec([0, 1, 2, 5, 7, 8]) == '0-2,5,7-8'
  assert sweeps.array_spec([3]) == '3'


def test_cpu_slices_deal_the_cores_out_disjointly():
  assert sweeps.cpu_slices(2, [0, 1]) == [(0,), (1,)]
  assert sweeps.cpu_slices(2, [0, 1, 2, 3, 4]) == [(0, 1, 2), (3, 4)]
  assert sweeps.cpu_slices(3, [4, 5, 6]) == [(4,), (5,), (6,)]
  assert sweeps.cpu_slices(3, [0, 1]) == [None] * 3  # fewer cores than slots: no pinning
  assert sweeps.cpu_slices(1, [0, 1]) == [None]       # one at a time: every core


def test_device_env_gives_each_process_one_accelerator():
  env = sweeps.device_env('3')
  assert env['CUDA_VISIBLE_DEVICES'] == '3' and env['TPU_VISIBLE_CHIPS'] == '3'
  assert env['TPU_PROCESS_PORT'] != sweeps.device_env('2')['TPU_PROCESS_PORT']
  assert 'XLA_PYTHON_CLIENT_PREALLOCATE' not in env
  assert sweeps.device_env('0', per_device=2)['XLA_PYTHON_CLIENT_PREALLOCATE'] == 'false'
  assert not sweeps.device_env(None)


# ---- The command line ------------------------------------------------------------------------


def test_dry_run_prints_one_command_per_point(tmp_path):
  proc = _sweep(SMOKE, f'--root={tmp_path}', '--dry-run', '--parallel=2')
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 4
  for line, name in zip(lines, SMOKE_NAMES):
    assert ' -m vae_jax.main --config=configs/digits.py ' in line
    assert f'--workdir={tmp_path}/smoke_sweep/{name}' in line
  assert "'--config.model.hidden_sizes=(32,)'" in lines[0]
  assert not (tmp_path / 'smoke_sweep').exists(), '--dry-run must not write anything'


def test_slurm_script_has_one_array_index_per_point(tmp_path):
  proc = _sweep(SMOKE, f'--root={tmp_path}', '--slurm', '--dry-run', '--partition=gpu', '--sbatch=--gpus=1')
  assert proc.returncode == 0, proc.stderr[-2000:]
  script = proc.stdout
  assert '#SBATCH --array=0-3\n' in script
  assert '#SBATCH --partition=gpu\n' in script and '#SBATCH --gpus=1\n' in script
  commands = [line for line in script.splitlines() if ' -m vae_jax.main ' in line]
  assert len(commands) == 4
  s = sweeps.load(SMOKE, tmp_path)
  for i, p in enumerate(s.points):
    assert commands[i].strip().startswith(f'{i}) point=(')
    beta, latent_dim = p.overrides['model.beta'], p.overrides['model.latent_dim']
    assert f'--workdir={p.workdir}' in commands[i] and commands[i].endswith(
        f'--config.model.beta={beta} --config.model.latent_dim={latent_dim}) ;;')
  assert '#SBATCH --requeue\n' in script and '#SBATCH --signal=B:USR1@300\n' in script
  subprocess.run(['bash', '-n'], input=script, text=True, check=True)  # valid bash
  assert '--partition' not in _sweep(SMOKE, f'--root={tmp_path}', '--slurm', '--dry-run').stdout


def _stand_in(bin_dir, name, log):
  tool = bin_dir / name
  tool.write_text(f'#!/bin/sh\necho "{name} $@" >> {log}\n')
  tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize('signum', [signal.SIGUSR1, signal.SIGTERM], ids=['time-limit', 'preemption'])
def test_a_slurm_task_saves_and_requeues_itself(tmp_path, signum):
  """The array task's script under a stand-in scontrol: USR1 (SLURM's warning before the time limit) or
  TERM (preemption, which SLURM sends to every process of the job) makes the point save and exit 75, and
  the task asks `scontrol requeue` for itself."""
  body = """
      BASE_CONFIG = 'configs/digits.py'
      FIXED = {'num_epochs': 200, 'steps_per_dispatch': 10, 'log_every_steps': 10,
               'checkpoint_every_steps': 100000, 'eval.every_epochs': 100, 'dispatch': 'scan'}
      def get_sweep():
        return [{'model.latent_dim': 2}]
      """
  s = sweeps.load(_write_sweep(tmp_path, body, 'long'), tmp_path / 'root')
  script = tmp_path / 'task.sh'
  script.write_text(sweeps.slurm_script(s, workdir=str(ROOT)))
  bin_dir, log = tmp_path / 'bin', tmp_path / 'calls'
  bin_dir.mkdir()
  _stand_in(bin_dir, 'scontrol', log)
  env = _env(PATH=f'{bin_dir}:{os.environ["PATH"]}', SLURM_ARRAY_JOB_ID='123', SLURM_ARRAY_TASK_ID='0')
  task = subprocess.Popen(['bash', str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True)
  metrics = pathlib.Path(s.points[0].workdir) / 'metrics.jsonl'
  deadline = time.time() + 240
  while time.time() < deadline and not (metrics.exists() and 'train/loss' in metrics.read_text()):
    time.sleep(0.5)
  if signum == signal.SIGTERM:
    os.killpg(task.pid, signum)  # preemption: every process of the task, the shell and the point
  else:
    task.send_signal(signum)  # --signal=B:USR1: the batch shell only
  _, stderr = task.communicate(timeout=240)
  assert task.returncode == 75, stderr[-2000:]
  assert 'saved the checkpoint' in stderr and 'requeueing 123_0' in stderr
  assert log.read_text().split() == ['scontrol', 'requeue', '123_0']
  assert sweeps.latest_checkpoint(s.points[0].workdir)  # what the requeued task resumes from


def test_slurm_submits_the_script_with_sbatch(tmp_path):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  fake = bin_dir / 'sbatch'
  fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/sbatch_args\necho "Submitted batch job 42"\n')
  fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  proc = _sweep(SMOKE, f'--root={tmp_path}', '--slurm', env=_env(PATH=f'{bin_dir}:{os.environ["PATH"]}'))
  assert proc.returncode == 0, proc.stderr[-2000:]
  script = tmp_path / 'smoke_sweep' / 'slurm.sh'
  assert (tmp_path / 'sbatch_args').read_text().split() == [str(script)]
  assert '#SBATCH --array=0-3' in script.read_text()


@pytest.mark.parametrize('body,args,expected', [
    (None, (), 'no sweep file'),
    ("BASE_CONFIG = 'configs/digits.py'\n", (), 'must define get_sweep()'),
    ("BASE_CONFIG = 'configs/digits.py'\ndef get_sweep():\n  return [{'model.betta': 1.0}]\n", (),
     "unknown config field 'model.betta': model has no 'betta'"),
    ("BASE_CONFIG = 'configs/digits.py'\ndef get_sweep():\n  return [{'model.latent_dim': 2.5}]\n", (),
     'point latent_dim=2.5: '),
    ("BASE_CONFIG = 'configs/digits.py'\ndef get_sweep():\n  return [{'model.latent_dim': 0}]\n", (),
     'model.latent_dim=0 must be a positive integer'),
    ("BASE_CONFIG = 'configs/nope.py'\ndef get_sweep():\n  return [{}]\n", (), 'no file configs/nope.py'),
    ("BASE_CONFIG = 'configs/digits.py'\ndef get_sweep():\n  return [{'model.beta': 1.0}]\n", ('--parallel=0',),
     '--parallel=0 must be >= 1'),
])
def test_bad_input_is_one_clear_line_and_launches_nothing(tmp_path, body, args, expected):
  path = tmp_path / 'missing.py' if body is None else _write_sweep(tmp_path, body)
  proc = _sweep(path, f'--root={tmp_path}/runs', *args)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and expected in last, proc.stderr[-2000:]
  assert not (tmp_path / 'runs').exists()


# ---- Running sweeps --------------------------------------------------------------------------


def _report_rows(directory):
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.sweep_report', str(directory)], cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(directory / 'results.csv', encoding='utf-8') as f:
    return list(csv.DictReader(f))


def _group_alive(pgid):
  try:
    os.killpg(pgid, 0)
  except ProcessLookupError:
    return False
  return True


def test_killed_sweep_resumes_two_at_a_time_then_the_report(tmp_path):
  """Killed after one point: the rerun, two points at a time, skips the finished point, resumes the
  started one, and the report holds all four."""
  s = sweeps.load(SMOKE, tmp_path)
  workdirs = [pathlib.Path(p.workdir) for p in s.points]
  with open(tmp_path / 'first.log', 'w', encoding='utf-8') as log:
    proc = subprocess.Popen(_sweep_cmd(SMOKE, f'--root={tmp_path}', '--parallel=1'), cwd=ROOT, env=_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
  try:
    deadline = time.monotonic() + 300
    while True:  # one point finished, the next one started, and one still waiting: the sweep cannot end by itself
      finished = [w for w in workdirs if sweeps.is_finished(w)]
      started = [w for w in workdirs if (w / 'launch.log').exists() and w not in finished]
      if finished and started and len(finished) + len(started) < len(workdirs) and proc.poll() is None:
        break
      assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / 'first.log').read_text()[-3000:]
      time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # the scheduler only: it must stop its children itself
    assert proc.wait(60) == errors.PREEMPTED_EXIT_CODE  # rerun to continue, as every command says
    # The second point may be between its launch.log and its process when the signal lands: 0 running then.
    assert re.fullmatch(r'preempted: SIGTERM received: stopped [01] running point\(s\), [01] of them cleanly \(exit 75\); '
                        'rerun the same command to continue',  # 0 cleanly: the point was still starting, killed outright
                        (tmp_path / 'first.log').read_text().strip().splitlines()[-1])
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < deadline:
      time.sleep(0.2)
    assert not _group_alive(proc.pid), 'a point kept running after the sweep was killed'
  finally:
    if _group_alive(proc.pid):
      os.killpg(proc.pid, signal.SIGKILL)
  assert len(finished) == 1  # the sweep went one point at a time, and was stopped in the second
  before = {w: ((w / 'eval.json').stat().st_mtime_ns, (w / 'metrics.jsonl').stat().st_mtime_ns) for w in finished}
  assert 'unfinished' in sweeps.status(started[0]) or sweeps.status(started[0]) == 'not started'

  proc = _sweep(SMOKE, f'--root={tmp_path}', '--parallel=2')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.count('skipped (finished before)') == len(finished)
  assert '4 of 4 points finished' in proc.stdout
  directory = tmp_path / 'smoke_sweep'
  assert all(sweeps.is_finished(w) for w in workdirs)
  for w, mtimes in before.items():
    assert ((w / 'eval.json').stat().st_mtime_ns, (w / 'metrics.jsonl').stat().st_mtime_ns) == mtimes, w
    assert f'started {w.name} ' not in proc.stderr
  for w in workdirs:
    assert (w / 'launch.log').read_text().startswith('# ')
  # Two ran at once: the third point to start started only after one of the first two ended.
  log = proc.stderr
  starts = [m.start() for m in re.finditer(r'started \S+', log)]
  assert len(starts) == 3 and starts[1] < log.index(' finished in ') < starts[2], log[-3000:]
  if len(os.sched_getaffinity(0)) >= 2:  # side by side, each on its own cores
    assert len(set(re.findall(r'started \S+ on cores ([\d,]+)', log))) == 2, log[-3000:]

  rows = _report_rows(directory)
  assert [r['point'] for r in rows] == SMOKE_NAMES
  assert all(r['status'] == 'finished' for r in rows)
  assert [(float(r['model.beta']), int(r['model.latent_dim'])) for r in rows] == [(0.5, 2), (0.5, 4), (2, 2), (2, 4)]
  for r in rows:  # the table holds each point's own eval.json
    results = json.loads((directory / r['point'] / 'eval.json').read_text())
    assert float(r['nll_nats']) == pytest.approx(results['nll_nats'])
    assert float(r['elbo_nats']) == pytest.approx(float(r['recon_nats']) - float(r['kl_nats']), abs=1e-3)
  md = (directory / 'results.md').read_text()
  assert md.count('| finished |') == 4
  assert (directory / 'plot_model_beta.png').stat().st_size > 0
  assert (directory / 'plot_model_latent_dim.png').stat().st_size > 0

  again = _sweep(SMOKE, f'--root={tmp_path}', '--parallel=2')  # finished points are not started again
  assert again.returncode == 0 and again.stdout.count('skipped (finished before)') == 4
  assert 'started' not in again.stderr


def test_a_failed_point_does_not_stop_the_others(tmp_path):
  path = _write_sweep(tmp_path, f"""
      BASE_CONFIG = {str(ROOT / 'configs' / 'digits.py')!r}
      FIXED = {{'num_epochs': 1, 'model.hidden_sizes': (16,), 'eval.num_importance_samples': 2,
               'eval.num_images': 4}}
      def get_sweep():  # the first point's batch is larger than the training set: it fails once data is read
        return [{{'batch_size': 100000}}, {{'model.latent_dim': 2}}]
      """, name='failing')
  proc = _sweep(path, f'--root={tmp_path}', '--parallel=1')
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert 'failed (exit 2)' in proc.stdout and '1 of 2 points finished; 1 failed' in proc.stdout
  directory = tmp_path / 'failing'
  assert 'is larger than the 1297 training images' in (directory / 'batch_size=100000' / 'launch.log').read_text()
  assert sweeps.is_finished(directory / 'latent_dim=2')
  rows = _report_rows(directory)
  assert [(r['point'], r['status']) for r in rows] == [('batch_size=100000', 'failed (exit 2)'),
                                                       ('latent_dim=2', 'finished')]
  assert '**failed (exit 2)**' in (directory / 'results.md').read_text()


def test_report_of_a_directory_of_runs_without_sweep_json(tmp_path):
  for name, beta, latent in (('a', 0.5, 2), ('b', 1.0, 2), ('c', 2.0, 2)):
    w = tmp_path / name
    w.mkdir()
    (w / 'config.json').write_text(json.dumps({'seed': 0, 'model': {'beta': beta, 'latent_dim': latent},
                                               'resolved': {'total_steps': 10}}))
    if name != 'c':
      (w / 'eval.json').write_text(json.dumps({'step': 10, 'nll_nats': 40.0 + beta, 'recon_nats': -39.0,
                                               'kl_nats': beta, 'elbo_nats': -39.0 - beta}))
  fields, rows = sweep_report.gather(tmp_path)
  assert fields == ['model.beta']
  assert [(r.name, r.status, r.settings['model.beta']) for r in rows] == [
      ('a', 'finished', 0.5), ('b', 'finished', 1.0), ('c', 'unfinished (step 0 of 10)', 2.0)]
  written = sweep_report.write_report(tmp_path)
  assert {p.name for p in written} == {'results.md', 'results.csv', 'plot_model_beta.png'}
  assert '**unfinished (step 0 of 10)**' in (tmp_path / 'results.md').read_text()


def test_over_seeds_gives_each_setting_its_mean_and_standard_deviation():
  row = lambda name, seed, beta, nll, status='finished': sweep_report.Row(
      name, status, {'seed': seed, 'model.beta': beta}, {'nll_nats': nll, 'elbo_nats': -nll} if nll else None, 'vae')
  rows = [row('a', 0, 1.0, 100.0), row('b', 1, 1.0, 102.0), row('c', 2, 1.0, 107.0),
          row('d', 0, 4.0, 110.0), row('e', 1, 4.0, None, 'failed (exit 1)')]
  md = sweep_report.over_seeds(['seed', 'model.beta'], rows, 'toy')
  lines = {line.split(' | ')[0]: line for line in md.splitlines() if line.startswith('| 1') or line.startswith('| 4')}
  # beta 1: mean 103, sample std sqrt(((-3)^2 + (-1)^2 + 4^2) / 2) = sqrt(13)
  assert '3 of 3' in lines['| 1'] and f'103.00 ± {13 ** 0.5:.2f}' in lines['| 1']
  assert '1 of 2' in lines['| 4'] and '110.00 |' in lines['| 4'] and '±' not in lines['| 4'].split('1 of 2')[1]

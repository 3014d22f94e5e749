"""The optional experiment trackers (config.writers): W&B and MLflow get what metrics.jsonl holds, read back
through their own offline files and API; a resumed writer continues the same tracker runs; a tracker whose
library is missing is one ConfigError before anything runs."""

import contextlib
import json
import math
import os
import pathlib
import struct
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from vae_jax import config_lib
from vae_jax import errors
from vae_jax.runs import writers
from vae_jax.training import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRACKERS = ('tensorboard', 'wandb', 'mlflow')
# MLflow 3.17 with SQLAlchemy 2.1 warns of its own use of `noload` on opening a store; nothing of ours.
pytestmark = pytest.mark.filterwarnings('ignore:The ``noload`` loader strategy is deprecated')


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
  """The trackers' own defaults, whatever this machine's environment says; no network."""
  for name in ('WANDB_MODE', 'WANDB_DIR', 'WANDB_RUN_ID', 'WANDB_RESUME', 'MLFLOW_TRACKING_URI'):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv('WANDB_SILENT', 'true')


def _config(**overrides):
  c = config_lib.base_config()
  c.writers = TRACKERS
  for key, value in overrides.items():
    node, *path = c, *key.split('.')
    for p in path[:-1]:
      node = node[p]
    node[path[-1]] = value
  return c


def _session(workdir, config, scalars_by_step, images_at=None, images=None, stop=None):
  """One training session's writes; `stop` an exception that ends it, as a preemption or crash would."""
  with pytest.raises(stop) if stop else contextlib.nullcontext(), writers.MetricWriter(workdir, config) as writer:
    for step, scalars in scalars_by_step.items():
      writer.write_scalars(step, scalars)
    if images:
      writer.write_images(images_at, images)
    if stop:
      raise stop('stopped')


def _scalars(step):
  return {'train/loss': np.float32(100.0 / step), 'train/skipped_steps': 0, 'validation/elbo_nats': -1.5 * step,
          'train/grad_norm': float('nan') if step == 20 else 0.25 * step}


def _jsonl(workdir) -> dict[int, dict[str, float]]:
  out = {}
  for record in writers.read_metrics(workdir):
    out.setdefault(record.pop('step'), {}).update({k: float(v) for k, v in record.items()})
  return out


def _same(a: dict, b: dict) -> bool:
  """Equal histories {step: {tag: value}}, NaN equal to NaN."""
  return a.keys() == b.keys() and all(
      a[s].keys() == b[s].keys() and all(a[s][k] == b[s][k] or math.isnan(a[s][k]) and math.isnan(b[s][k])
                                         for k in a[s]) for s in a)


def _wandb_records(path: pathlib.Path):
  """The records of a W&B transaction log (run-ID.wandb): a 7-byte header, then LevelDB-log chunks (crc,
  length, type: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks, each a wandb_internal Record."""
  from wandb.proto import wandb_internal_pb2  # pylint: disable=g-import-not-at-top
  data, block = path.read_bytes(), 32768
  assert data[:4] == b':W&B'
  pos, pending = 7, b''
  while pos + 7 <= len(data):
    if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
      pos += block - pos % block
      continue
    length, kind = struct.unpack('<HB', data[pos + 4:pos + 7])
    if pos + 7 + length > len(data):  # a chunk still being written
      return
    chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
    pending = chunk if kind in (1, 2) else pending + chunk
    if kind in (1, 4):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(pending)
      yield record


def _finished_wandb_log(log: pathlib.Path, timeout: float = 30) -> list:
  """The records of a finished run's log: wandb-core may write its last ones (the exit record) a moment after
  run.finish() returns, so this waits for them."""
  deadline = time.monotonic() + timeout
  while True:
    records = list(_wandb_records(log))
    if any(r.WhichOneof('record_type') == 'exit' for r in records):
      return records
    assert time.monotonic() < deadline, f'{log} has no exit record after {timeout} s'
    time.sleep(0.05)


def _wandb_runs(workdir) -> list[tuple[str, pathlib.Path, dict]]:
  """Each offline session's (run id, files dir, history {step: {key: value}}), oldest first; an image is a
  dict of its fields (`path` under the files dir)."""
  runs = []
  for log in sorted((workdir / 'wandb').glob('offline-run-*/run-*.wandb'), key=lambda p: p.stat().st_mtime_ns):
    history, run_id = {}, None
    for record in _finished_wandb_log(log):
      if record.WhichOneof('record_type') == 'run':
        run_id = record.run.run_id
      if record.WhichOneof('record_type') == 'history':
        row = {}
        for item in record.history.item:
          key, *field = item.nested_key or [item.key]
          if not key.startswith('_'):
            value = json.loads(item.value_json)
            if field:
              row.setdefault(key, {})[field[0]] = value
            else:
              row[key] = value
        history[record.history.step.num] = row
    runs.append((run_id, log.parent / 'files', history))
  return runs


def _wandb_scalars(history: dict) -> dict:
  """The scalars of a W&B history (NaN, which W&B writes as JSON's NaN, a float again)."""
  out = {step: {k: float(v) for k, v in row.items() if not isinstance(v, dict)} for step, row in history.items()}
  return {step: row for step, row in out.items() if row}


def _mlflow(workdir):
  from mlflow.tracking import MlflowClient  # pylint: disable=g-import-not-at-top
  saved = json.loads((workdir / writers.TRACKERS_FILE).read_text())['mlflow']
  return MlflowClient(saved['tracking_uri']), saved['run_id']


def _mlflow_scalars(client, run_id) -> dict:
  out = {}
  for key in client.get_run(run_id).data.metrics:
    for m in client.get_metric_history(run_id, key):
      assert key not in out.get(m.step, {}), f'{key} logged twice at step {m.step}'
      out.setdefault(m.step, {})[key] = m.value
  return out


def _mlflow_image(client, run_id, tag, step, tmp_path) -> np.ndarray:
  """The image `tag` at `step` (train.py writes the last step's twice: after validation and after test)."""
  found = sorted(f.path for f in client.list_artifacts(run_id, 'images')
                 if f.path.endswith('.png') and f'/{tag}+step+{step}+' in f.path)
  assert found, f'no {tag} image at step {step}'
  return np.asarray(Image.open(client.download_artifacts(run_id, found[-1], str(tmp_path))))


def test_trackers_get_the_scalars_and_images_of_metrics_jsonl(tmp_path):
  workdir = tmp_path / 'fmnist_beta4'
  workdir.mkdir()
  rng = np.random.default_rng(0)
  images = {'samples': rng.random((12, 10, 1)), 'reconstructions': rng.random((8, 6, 3))}
  _session(workdir, _config(), {s: _scalars(s) for s in (10, 20, 30)}, 30, images)

  expected = _jsonl(workdir)
  assert sorted(expected) == [10, 20, 30] and math.isnan(expected[20]['train/grad_norm'])
  [(run_id, files, history)] = _wandb_runs(workdir)
  assert _same(_wandb_scalars(history), expected)
  client, mlflow_run = _mlflow(workdir)
  assert _same(_mlflow_scalars(client, mlflow_run), expected)
  run = client.get_run(mlflow_run)
  assert run.info.status == 'FINISHED' and run.info.run_name == 'fmnist_beta4'  # the workdir's name by default
  assert run.data.params['model.latent_dim'] == '50' and run.data.params['writers'] == str(TRACKERS)
  assert json.loads((workdir / writers.TRACKERS_FILE).read_text())['wandb'] == {'run_id': run_id}

  for tag, image in images.items():
    want = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8).squeeze()
    np.testing.assert_array_equal(np.asarray(Image.open(files / history[30][tag]['path'])).squeeze(), want)
    np.testing.assert_array_equal(_mlflow_image(client, mlflow_run, tag, 30, tmp_path).squeeze(), want)
  assert list(workdir.glob('events.out.tfevents.*')), 'TensorBoard writes as before'


def test_a_resumed_writer_continues_the_same_tracker_runs(tmp_path):
  """A run preempted after step 30 and resumed from its checkpoint at step 20 (as train.py does: metrics.jsonl
  cut back to the checkpoint, steps 30 logged again) goes on in the same W&B and MLflow runs."""
  config = _config(**{'tracking.run_name': 'beta4', 'tracking.wandb_mode': 'offline'})
  _session(tmp_path, config, {s: _scalars(s) for s in (10, 20, 30)}, stop=errors.Preempted)
  first = json.loads((tmp_path / writers.TRACKERS_FILE).read_text())
  client, run_id = _mlflow(tmp_path)
  assert client.get_run(run_id).info.status == 'KILLED'

  writers.truncate_metrics(tmp_path, 20)
  _session(tmp_path, config, {s: _scalars(s) for s in (30, 40)}, 40, {'samples': np.zeros((4, 4, 1))})
  assert json.loads((tmp_path / writers.TRACKERS_FILE).read_text()) == first
  expected = _jsonl(tmp_path)
  assert sorted(expected) == [10, 20, 30, 40]

  (id1, _, h1), (id2, _, h2) = _wandb_runs(tmp_path)  # two offline sessions of one run, as `wandb sync` sends them
  assert id1 == id2 == first['wandb']['run_id']
  assert _same(_wandb_scalars(h2 | h1), expected)
  run = client.get_run(run_id)
  assert run.info.status == 'FINISHED' and run.info.run_name == 'beta4'
  assert len(client.search_runs([run.info.experiment_id])) == 1
  assert _same(_mlflow_scalars(client, run_id), expected)  # step 30 is not logged twice
  _mlflow_image(client, run_id, 'samples', 40, tmp_path)


@pytest.mark.parametrize('library,writer,pip', [
    ('wandb', 'wandb', 'pip install wandb'),
    ('mlflow', 'mlflow', 'pip install mlflow-skinny sqlalchemy alembic'),
    ('sqlalchemy', 'mlflow', 'pip install mlflow-skinny sqlalchemy alembic'),
])
def test_a_writer_whose_library_is_missing_is_refused_before_anything_runs(tmp_path, monkeypatch, make_config,
                                                                            library, writer, pip):
  monkeypatch.setitem(sys.modules, library, None)  # how Python marks a module that cannot be imported
  workdir = tmp_path / 'run'
  with pytest.raises(errors.ConfigError) as raised:
    train.train_and_evaluate(make_config(writers=('tensorboard', writer)), workdir)
  message = str(raised.value)
  assert message == (f'writers: {writer} needs {library}, which is not installed; {pip} '
                     "(or pip install -e '.[trackers]')")
  assert not workdir.exists()


def test_a_tracker_that_cannot_open_is_one_line_and_closes_the_others(tmp_path):
  config = _config(writers=('wandb', 'mlflow'), **{'tracking.mlflow_tracking_uri': 'nosuch://tracker'})
  with pytest.raises(errors.UserError, match='^writers: mlflow could not open its run at nosuch://tracker: ') as e:
    writers.MetricWriter(tmp_path, config)
  assert '\n' not in str(e.value)
  [(run_id, _, _)] = _wandb_runs(tmp_path)  # the W&B run opened first was ended, as failed
  records = _finished_wandb_log(next((tmp_path / 'wandb').glob('offline-run-*/run-*.wandb')))
  exits = [r.exit.exit_code for r in records if r.WhichOneof('record_type') == 'exit']
  assert exits == [1] and run_id == json.loads((tmp_path / writers.TRACKERS_FILE).read_text())['wandb']['run_id']


@pytest.mark.parametrize('value,expected', [
    (('tensorboard,wandbb',), "writers='wandbb' is not allowed; use one of tensorboard, wandb, mlflow"),
    (('wandb', 'tensorboard,wandb'), 'writers names wandb twice'),
    (('tensorboard',), None),
    ((), None),  # metrics.jsonl alone
])
def test_writer_names_are_checked(value, expected):
  config = _config(writers=value)
  config_lib.validate(config)  # the schema's part; the writers check their own field
  if expected is None:
    writers.check_config(config)
  else:
    with pytest.raises(errors.ConfigError, match=expected):
      writers.check_config(config)


def test_the_command_line_takes_writers_as_a_comma_list(tmp_path):
  """--config.writers=a,b as README.md writes it; a bad name is one line, exit 2, no workdir."""
  workdir = tmp_path / 'run'
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.main', '--config=configs/digits.py', f'--workdir={workdir}',
                         '--config.writers=tensorboard,wandbb'], cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS='cpu'),
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: writers='wandbb' is not allowed; use one of tensorboard, wandb, mlflow")
  assert not workdir.exists()


def test_wandb_mode_is_checked():
  with pytest.raises(errors.ConfigError, match="tracking.wandb_mode='dryrun' is not allowed; use one of offline"):
    writers.check_config(_config(**{'tracking.wandb_mode': 'dryrun'}))


def test_a_training_run_logs_to_every_writer(tmp_path, make_config):
  """train.py hands the config to MetricWriter: a tiny run's metrics and images reach all three."""
  workdir = tmp_path / 'run'
  train.train_and_evaluate(make_config(num_epochs=1, writers=TRACKERS), workdir)
  expected = _jsonl(workdir)
  assert any(k.startswith('test/') for k in expected[max(expected)])
  [(_, _, history)] = _wandb_runs(workdir)
  assert _same(_wandb_scalars(history), expected)
  assert {'samples', 'reconstructions'} <= set(history[max(expected)])
  client, run_id = _mlflow(workdir)
  assert _same(_mlflow_scalars(client, run_id), expected)
  _mlflow_image(client, run_id, 'reconstructions', max(expected), tmp_path)

"""`sequence`: how well a sequence kind's codes carry its sentences, and the text a finished run writes.

  reconstruction_token_accuracy   the share of the test split's tokens (EOS included) that the decoding
                                  (model.decoding) from q's mean puts at their own positions
  reconstruction_exact            the share of test sequences it gives back whole

A language model (`lm`) has no code: its "reconstruction" is its own decoding
from nothing, the floor a sequence VAE's should clear.

The output samples.txt (data of token sequences, a kind that samples) holds
prior samples (sampled and by model.decoding), test sentences with their
reconstructions, and an interpolation between two test sentences' codes:
z = (1 - t) mean(x_a) + t mean(x_b), decoded at t = 0, 1/6, ..., 1.
"""

import pathlib

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.data import tokenizers
from vae_jax.evaluation.metrics import base
from vae_jax.figures import Figure

SAMPLES_TXT = 'samples.txt'
_STREAM = 13  # fold_in of the metrics key for samples.txt's draws
NUM_SHOWN = 10
INTERPOLATION_STEPS = 7


def _applies(ctx: base.Context) -> str | None:
  if ctx.dataset.spec.kind != 'sequence' or not hasattr(ctx.model, 'generate'):
    return f'{ctx.dataset.name} holds {ctx.dataset.spec.describe()} and model.kind={ctx.config.model.kind}: not a ' \
           'sequence kind on token sequences'
  return None


def _decoder(model, params):
  """means (n, d) -> token ids by model.decoding."""
  return jax.jit(lambda z: model.apply({'params': params}, z, method=model.decode))


def reconstructions(model, params, examples: np.ndarray, batch_size: int = 500) -> np.ndarray:
  """Token ids decoded from q's mean of each example (n, L)."""
  encode, decode = base.encoder(model, params), _decoder(model, params)
  return base.batched(lambda x: decode(encode(x, None)), (examples,), 'decoding reconstructions', batch_size)


def token_accuracy(x: np.ndarray, decoded: np.ndarray, pad_id: int = tokenizers.PAD) -> tuple[float, float]:
  """(share of x's tokens, EOS included, that `decoded` has at the same position; share of rows equal whole)."""
  mask = x != pad_id
  same = (decoded == x) & mask
  return float(same.sum() / mask.sum()), float(np.mean(np.all((decoded == x) | ~mask, axis=1)))


class Sequence(base.Metric):
  name = 'sequence'
  figures = (
      Figure('reconstruction_token_accuracy', "share of the test tokens (EOS included) that decoding from q's mean "
             'puts back at their positions', 'fraction', True, label='recon token acc.', decimals=3),
      Figure('reconstruction_exact', "share of the test sequences that decoding from q's mean gives back whole",
             'fraction', True, label='recon exact', decimals=3),
  )

  def applies(self, ctx: base.Context) -> str | None:
    return super().applies(ctx) or _applies(ctx)

  def compute(self, ctx: base.Context) -> dict:
    x = np.asarray(ctx.dataset.test.examples)
    accuracy, exact = token_accuracy(x, reconstructions(ctx.model, ctx.params, x))
    return {'reconstruction_token_accuracy': accuracy, 'reconstruction_exact': exact,
            'reconstruction_decoding': ctx.config.model.decoding}


@base.register_output(SAMPLES_TXT)
def write_text_samples(ctx: base.Context, results: dict, workdir) -> dict:
  """WORKDIR/samples.txt for sequence kinds on token sequences (nothing for other runs)."""
  del results
  if _applies(ctx) or not ctx.model.stochastic:
    return {}
  model, params, spec = ctx.model, ctx.params, ctx.dataset.spec
  text = lambda ids: tokenizers.texts_of(spec, np.asarray(ids))
  key = jax.random.fold_in(ctx.key, _STREAM)
  sampled = model.apply({'params': params}, key, NUM_SHOWN, method=model.sample)
  decode = _decoder(model, params)
  lines = [f'# {ctx.config.model.kind} on {ctx.dataset.name}: decoding {ctx.config.model.decoding} unless said', '',
           '## Prior samples: z ~ p(z), x sampled from p(x|z)', *text(sampled), '']
  x = np.asarray(ctx.dataset.test.examples[:NUM_SHOWN])
  means = np.asarray(base.encoder(model, params)(jnp.asarray(x), None))
  if means.shape[1]:
    z = jax.random.normal(jax.random.fold_in(key, 1), (NUM_SHOWN, means.shape[1]))
    lines += ['## Prior samples: z ~ p(z), decoded', *text(decode(z)), '']
  lines += ["## Test sentences (>) and their reconstructions (=) from q's mean"]
  for a, b in zip(text(x), text(decode(jnp.asarray(means))) if means.shape[1] else [''] * len(x)):
    lines += [f'> {a}', f'= {b}']
  if means.shape[1] and len(x) > 1:
    t = np.linspace(0.0, 1.0, INTERPOLATION_STEPS)[:, None]
    path = (1 - t) * means[0] + t * means[1]
    lines += ['', f'## Interpolation from test sentence 0 to test sentence 1 through z (t = 0 .. 1 in '
              f'{INTERPOLATION_STEPS} steps)', *text(decode(jnp.asarray(path, jnp.float32)))]
  out = pathlib.Path(workdir) / SAMPLES_TXT
  tmp = out.with_name(out.name + '.tmp')
  tmp.write_text('\n'.join(lines) + '\n', encoding='utf-8')
  tmp.replace(out)
  logging.info('wrote prior samples, reconstructions and an interpolation to %s', out)
  return {}

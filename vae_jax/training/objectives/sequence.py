"""`sequence_elbo`: the ELBO of token sequences, with the remedies for posterior collapse that touch training.

  word dropout          the decoder's inputs lose words at model.word_dropout (`SeqVAE.training_terms`)
  aggressive encoder    with model.aggressive_encoder, the first model.aggressive_epochs alternate
                        model.aggressive_encoder_steps encoder-only updates with one decoder-only update
                        (He et al. 2019), each on its own batch; then both train at every step
  KL annealing, free bits   as for every kind: model.annealing, model.kl_warmup_epochs, model.free_bits
  baseline LM           with model.baseline_lm, the language model beside the VAE adds its NLL to the loss;
                        its parameters are their own group, with their own Adam and clipping, so neither
                        model's updates depend on the other's

He et al. update the encoder until its loss stops falling, and leave the
aggressive phase once the mutual information I(x; z) stops rising; here both
are fixed counts (model.aggressive_encoder_steps, model.aggressive_epochs), so
a run's steps, and its resume, do not depend on measurements made along the way.
"""

import jax.numpy as jnp

from vae_jax import errors
from vae_jax.models import seqvae
from vae_jax.training import optimizer
from vae_jax.training.objectives import elbo


class SequenceElbo(elbo.Elbo):
  """The ELBO with word dropout, and the encoder and decoder as two parameter groups when aggressive."""

  @classmethod
  def check_config(cls, config) -> None:
    m = config.model
    if m.aggressive_encoder and m.num_importance_samples > 1:
      raise errors.ConfigError('model.aggressive_encoder trains on the ELBO; use model.num_importance_samples=1')

  def loss(self, model, params, batch, keys, kl_weight):
    t = model.apply({'params': params}, batch['x'], keys, method=model.training_terms)
    loss, metrics = elbo.elbo_loss(model, t, kl_weight, self.config.model.free_bits)
    if 'lm_nll_nats' in t:  # the baseline LM's parameters get their gradient from this term alone
      loss = loss + jnp.mean(t['lm_nll_nats'])
    return loss, metrics

  def groups(self, total_steps: int, steps_per_epoch: int):
    m = self.config.model
    schedule = optimizer.learning_rate_schedule(self.config, total_steps, steps_per_epoch)
    adam = lambda: optimizer.adam(self.config.optim, schedule)
    if not m.aggressive_encoder:
      groups = super().groups(total_steps, steps_per_epoch)
    else:
      until, period = int(round(m.aggressive_epochs * steps_per_epoch)), m.aggressive_encoder_steps + 1
      encoder = lambda count: (count >= until) | (count % period != period - 1)
      decoder = lambda count: (count >= until) | (count % period == period - 1)
      groups = {'encoder': (optimizer.gated(adam(), encoder), schedule),
                'decoder': (optimizer.gated(adam(), decoder), schedule)}
    if m.get('baseline_lm', False):
      groups[seqvae.BASELINE] = (adam(), schedule)
    return groups

  def group_of(self, path: tuple[str, ...]) -> str:
    if path[0] == seqvae.BASELINE:
      return seqvae.BASELINE
    if not self.config.model.aggressive_encoder:
      return 'model'
    return 'decoder' if path[0] == 'decoder' else 'encoder'


"""`cvae`: the VAE conditioned on the class label y (Sohn et al. 2015).

q(z|x, y), p(x|z, y) and p(z|y). The one-hot label is read by the encoder
beside the image (appended to its last dense layer's input), by the decoder
beside z, and by the prior: N(0, I) (model.prior=standard_normal) or a
learned Gaussian per class (class_gaussian), both with a closed-form KL. The
ELBO and the importance-sampled likelihood are those of log p(x|y).

Without labels, `sample` and `decode` take the classes in turn (row i is
class i mod K), so every plot that draws from a model also draws from this
one; `infer`, `encode` and `reconstruct` need the images' labels.
"""

import jax
import jax.numpy as jnp

from vae_jax import data
from vae_jax import errors
from vae_jax.models import flows
from vae_jax.models import priors
from vae_jax.models import vae


class CVAE(vae.VAE):
  num_classes: int = 10

  conditional = True

  @classmethod
  def check_config(cls, config) -> None:
    m = config.model
    if m.prior == 'vampprior':
      raise errors.ConfigError('model.prior=vampprior evaluates q(z|u) at pseudo-inputs that carry no label; '
                               'use standard_normal or class_gaussian with model.kind=cvae')
    if config.data.name not in data.NUM_CLASSES:
      raise errors.ConfigError(f'model.kind=cvae needs labelled data; data.name={config.data.name!r} has no '
                               f'known classes (labelled: {", ".join(data.NUM_CLASSES)})')

  @classmethod
  def build(cls, config, spec: data.ExampleSpec) -> 'CVAE':
    latent, num_classes = config.model.latent_dim, data.NUM_CLASSES[config.data.name]
    encoder, decoder, likelihood = vae.build_parts(config, spec, 2 * latent + flows.context_dim(config))
    return cls(encoder=encoder, decoder=decoder, likelihood=likelihood, latent_dim=latent,
               prior=priors.make(config, spec.shape, latent, num_classes), flow=flows.make(config),
               num_classes=num_classes)

  def condition(self, labels: jax.Array | None, n: int | None = None) -> jax.Array:
    """The one-hot label (n, num_classes); for `n` draws without labels, the classes in turn."""
    if labels is None:
      if n is None:
        raise ValueError('model.kind=cvae models p(x|y): pass the labels y of the images')
      labels = jnp.arange(n) % self.num_classes
    return jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32)

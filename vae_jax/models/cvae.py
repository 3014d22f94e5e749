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
  # The number of classes of your own labelled data (data.name=array or image_folder with labels); 0: the
  # registered source's own count (fashion_mnist, mnist, cifar10, digits).
  options = {'num_classes': 0}

  @classmethod
  def check_config(cls, config) -> None:
    m = config.model
    if m.prior == 'vampprior':
      raise errors.ConfigError('model.prior=vampprior evaluates q(z|u) at pseudo-inputs that carry no label; '
                               'use standard_normal or class_gaussian with model.kind=cvae')
    if m.num_classes < 0:
      raise errors.ConfigError(f'model.num_classes={m.num_classes} must be >= 0 (0: the data source\'s own count)')
    if not m.num_classes and config.data.name not in data.NUM_CLASSES:
      raise errors.ConfigError(f'model.kind=cvae needs labelled data of known classes; data.name='
                               f'{config.data.name!r} has none registered (labelled: {", ".join(data.NUM_CLASSES)}): '
                               'for your own labelled data set model.num_classes=K')

  @classmethod
  def build(cls, config, spec: data.ExampleSpec) -> 'CVAE':
    latent = config.model.latent_dim
    num_classes = config.model.num_classes or data.NUM_CLASSES[config.data.name]
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

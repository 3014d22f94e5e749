"""The PyTorch yardstick of `vae_jax.benchmark`: the same VAE, trained the way PyTorch users do.

Optional: `pip install -e '.[benchmark]'` (on a CPU-only machine, install the
CPU build of torch first, e.g. from https://download.pytorch.org/whl/cpu). The
network mirrors `models.make` for the config: the same MLP widths, or the same
stride-2 3x3 convolutions, transposed convolutions and 3x3 output convolution;
the same activation, latent size, Bernoulli or fixed-scale Gaussian likelihood,
dynamic binarization, Adam and batch size. Eager mode, PyTorch's default
threads (one per core), channels-first tensors. Only throughput is measured:
nothing here is used for training or results.
"""

import math
import time

import numpy as np


def available() -> bool:
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def _network(config, image_shape):
  from torch import nn  # pylint: disable=g-import-not-at-top

  m = config.model
  height, width, channels = image_shape
  sizes = [int(h) for h in m.hidden_sizes]
  gated = m.activation == 'glu'
  act = {'relu': nn.ReLU, 'tanh': nn.Tanh, 'gelu': nn.GELU, 'elu': nn.ELU, 'swish': nn.SiLU}.get(m.activation)
  units = lambda n: 2 * n if gated else n
  activation = lambda dim: nn.GLU(dim) if gated else act()
  out_dim = m.latent_dim * (1 if m.kind == 'ae' else 2)

  if m.encoder == 'mlp':
    enc, dec, fan_in = [nn.Flatten()], [], height * width * channels
    for h in sizes:
      enc += [nn.Linear(fan_in, units(h)), activation(-1)]
      fan_in = h
    enc.append(nn.Linear(fan_in, out_dim))
    fan_in = m.latent_dim
    for h in reversed(sizes):
      dec += [nn.Linear(fan_in, units(h)), activation(-1)]
      fan_in = h
    dec += [nn.Linear(fan_in, height * width * channels), nn.Unflatten(1, (channels, height, width))]
    return nn.Sequential(*enc), nn.Sequential(*dec)

  enc, fan_in = [], channels
  for c in sizes:
    enc += [nn.Conv2d(fan_in, units(c), 3, stride=2, padding=1), activation(1)]
    fan_in = c
  h0, w0 = -(-height // 2**len(sizes)), -(-width // 2**len(sizes))
  enc += [nn.Flatten(), nn.Linear(h0 * w0 * fan_in, out_dim)]
  top = sizes[-1]
  dec = [nn.Linear(m.latent_dim, units(h0 * w0 * top)), activation(-1), nn.Unflatten(1, (top, h0, w0))]
  fan_in = top
  for c in reversed(sizes):
    dec += [nn.ConvTranspose2d(fan_in, units(c), 3, stride=2, padding=1, output_padding=1), activation(1)]
    fan_in = c
  dec.append(nn.Conv2d(fan_in, channels, 3, padding=1))

  class Crop(nn.Module):
    def forward(self, x):
      return x[:, :, :height, :width]

  dec.append(Crop())
  return nn.Sequential(*enc), nn.Sequential(*dec)


def covers(config) -> bool:
  """Whether the yardstick has this config's network: the one-group vae and ae, with no learned prior or flow."""
  m = config.model
  return m.kind in ('vae', 'ae') and m.prior == 'standard_normal' and m.posterior_flow == 'none' \
      and m.likelihood in ('bernoulli', 'gaussian')


def images_per_second(config, images: np.ndarray, seconds: float = 10.0) -> float:
  """Training images/s of the PyTorch VAE on `images` (N, H, W, C in [0, 1]), after a warm-up."""
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  m = config.model
  if not covers(config):
    raise ValueError(f'the PyTorch yardstick covers the vae and ae with N(0, I), no flow and a Bernoulli or '
                     f'Gaussian likelihood, not model.kind={m.kind} prior={m.prior} '
                     f'posterior_flow={m.posterior_flow} likelihood={m.likelihood}')
  torch.manual_seed(config.seed)
  encoder, decoder = _network(config, images.shape[1:])
  params = list(encoder.parameters()) + list(decoder.parameters())
  opt = torch.optim.Adam(params, lr=config.learning_rate, betas=(config.optim.b1, config.optim.b2),
                         eps=config.optim.eps)
  data = torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)), np.float32))
  b, latent = config.batch_size, m.latent_dim
  steps_per_epoch = len(data) // b
  log_2pi, std = math.log(2 * math.pi), m.gaussian_std

  def step(i):
    x = data[(i % steps_per_epoch) * b:(i % steps_per_epoch + 1) * b]
    if config.data.binarize == 'dynamic':
      x = torch.bernoulli(x)
    h = encoder(x)
    if m.kind == 'ae':
      z, kl = h, torch.zeros(())
    else:
      mean, log_var = h[:, :latent], h[:, latent:]
      z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
      kl = 0.5 * (log_var.exp() + mean**2 - 1 - log_var).sum(1)
    out = decoder(z)
    if m.likelihood == 'bernoulli':
      recon = -F.binary_cross_entropy_with_logits(out, x, reduction='none').flatten(1).sum(1)
    else:
      recon = (-0.5 * ((x - torch.sigmoid(out)) / std)**2 - math.log(std) - 0.5 * log_2pi).flatten(1).sum(1)
    loss = -(recon - m.beta * kl).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip_norm)
    opt.step()

  for i in range(5):
    step(i)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    step(count)
    count += 1
  return b * count / (time.perf_counter() - start)

"""What a model's representations hold of the classes (every kind, on a labelled dataset).

The representation is `encode`'s output: a VAE's posterior means, an
autoencoder's codes, a hierarchy's means of all groups, a conditional kind's
means of q(z|x, y).
  probe_accuracy   logistic regression (scikit-learn, inputs standardized)
                   fitted on the training split's encodings, scored on the
                   test split's: how linearly the classes can be read off.
  knn_accuracy     the majority label of the k = 5 nearest training encodings
                   (Euclidean, in latent space) of each test encoding.
The training examples are binarized once (seed eval.binarization_seed + 2)
when the run binarizes them dynamically, as the model was trained to read them.
"""

from vae_jax import progress
from vae_jax.evaluation.metrics import base
from vae_jax.figures import Figure

KNN_NEIGHBOURS = 5


# scikit-learn is imported where it is used: it takes a second and a half to import, which every command
# that imports vae_jax (a config error, a sweep driver) would pay.
def probe_accuracy(train_x, train_y, test_x, test_y) -> float:
  from sklearn import linear_model  # pylint: disable=g-import-not-at-top
  from sklearn import pipeline  # pylint: disable=g-import-not-at-top
  from sklearn import preprocessing  # pylint: disable=g-import-not-at-top
  probe = pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(max_iter=2000))
  return float(probe.fit(train_x, train_y).score(test_x, test_y))


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = KNN_NEIGHBOURS) -> float:
  from sklearn import neighbors  # pylint: disable=g-import-not-at-top
  return float(neighbors.KNeighborsClassifier(k).fit(train_x, train_y).score(test_x, test_y))


class Representation(base.Metric):
  name = 'representation'
  needs = frozenset({'labels'})
  figures = (
      Figure('probe_accuracy', 'linear probe (logistic regression) on the encodings: train split fit, test split '
             'score', 'fraction', True),
      Figure('knn_accuracy', f'{KNN_NEIGHBOURS}-nearest-neighbour accuracy of the test encodings among the '
             'training encodings', 'fraction', True),
  )

  def compute(self, ctx: base.Context) -> dict:
    model, params, train, test = ctx.model, ctx.params, ctx.dataset.train, ctx.dataset.test
    train_z = base.encodings(model, params, base.like_test(train.decoded(), ctx.config, 2), train.labels,
                             'encoding the training split')
    test_z = base.encodings(model, params, test.decoded(), test.labels, 'encoding the test split')
    fitted_on = f'{len(train_z):,} training encodings of {train_z.shape[-1]} dimensions'
    with progress.stage(f'fitting the linear probe to {fitted_on}'):
      probe = probe_accuracy(train_z, train.labels, test_z, test.labels)
    with progress.stage(f'{KNN_NEIGHBOURS}-nearest-neighbour labels of {len(test_z):,} test encodings among '
                        f'{fitted_on}'):
      knn = knn_accuracy(train_z, train.labels, test_z, test.labels)
    return {'probe_accuracy': probe, 'knn_accuracy': knn,
            'representation': 'posterior means (encode)' if model.stochastic else 'codes (encode)'}

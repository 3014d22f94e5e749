"""experiments/text_sweep.py's points on configs/fortunes.py (word level); RESULTS.md, "Text".

  ./launch.sh sweep experiments/fortunes_sweep.py
  python -m vae_jax.sweep_report runs/fortunes_sweep
"""

import pathlib
import runpy

BASE_CONFIG = 'configs/fortunes.py'
get_sweep = runpy.run_path(str(pathlib.Path(__file__).with_name('text_sweep.py')))['get_sweep']

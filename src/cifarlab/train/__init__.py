"""Training: the hot loop (``loop``), where a call starts (``start``: the plan, fresh or
resumed), setting a run up (``context``), evaluation points and the end of a run
(``points``), optimizers and schedules (``optim``), the run's state (``state``),
data-parallel training (``distributed``) and the weight average (``ema``).

The package is callable: ``cifarlab.train(recipe, ...)`` is :func:`cifarlab.train.loop.train`.
"""

from cifarlab.callable_module import make_callable

make_callable(__name__, "cifarlab.train.loop:train")

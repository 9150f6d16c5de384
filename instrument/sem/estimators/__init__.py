"""Estimation: the objectives and their information (minimised by `instrument.sem.optim`).

Layout (lavaan's ``lav_model`` / ``lav_optim`` stages):

* ``ml.py``: the ML objective (`ml.MLObjective`), expected/observed information, the
  normal-theory weight and Gamma. The engine's one optimiser is `instrument.sem.optim.optimize`
  (Fisher scoring with a structured secant correction and step halving;
  `instrument.sem.optim.optimize_reporting` turns non-convergence into the result's warning, the
  one convergence report of every estimator).
* ``mlr.py``: casewise scores and the Huber-White sandwich pieces of MLR.
* ``fiml.py`` / ``fiml_fast.py``: the FIML objective on missing-data patterns, the EM
  saturated model and the FIML-corrected robust indices.
* ``dwls.py`` / ``categorical.py``: DWLS/ULS for ordered indicators (thresholds, polychorics).
* ``twolevel.py``: two-level ML (``level:`` models) -- the likelihood with its analytic gradient,
  the expected information, lavaan's EM for the saturated model and `twolevel.TwoLevelObjective`;
  the fit, result type and reliability are in `instrument.sem.twolevel`.

Which estimator runs is looked up in one registry, `instrument.sem.cfa.ESTIMATORS` (data kind,
estimator, missing -> fitting function), after `instrument.sem.cfa.cfa` has validated the
options once.

The protocol every objective implements:

* ``Model.from_partable(pt)`` gives the model; ``model.nx`` unique free parameters x
  (``theta_free = model.K @ x``), ``model.implied(x)`` per-group Sigma/mu, and
  ``model.delta(x)`` per-group d[mu, vech Sigma]/dx (``delta_compact`` + ``group_K`` for the
  per-group columns only, which is what makes multi-group fits fast).
* ``optimize(objective, x0)`` minimises any object with ``value(x)``, ``gradient(x)`` and
  ``expected_information(x)`` (E[Hessian]/2, per observation) by Fisher scoring with step
  halving; an optional ``gradient_and_information(x)`` gives both at once (ML: from the rank-2
  factors of Delta, `ml.factored_information`, without forming Delta; ``wrt="free"`` releases
  equality constraints for score tests).
* ``expected_information(model, x, stats)`` and ``hessian_information(objective, x)`` give
  information matrices per observation. The standard errors of ML fits are chosen by name in
  `instrument.sem.vcov` (``INFORMATION``: expected or observed, ``VCOV``: standard, Huber-White,
  cluster-robust) and their tests in `instrument.sem.test` (``TESTS``).
* ``weighted_delta``, ``moment_weight`` and ``gamma_nt`` are the normal-theory weight and
  asymptotic covariance of the sample moments (for sandwich estimators).
* Every estimator receives the one `instrument.sem.samplestats.SampleStats`: per group n, cov
  (divisor N), mean, optionally the raw rows (``GroupStats.from_data(x, names,
  keep_data=True)``) for casewise estimators, and the optional parts ``ordinal`` (DWLS/ULS:
  ``SampleStats.ordinal``), ``patterns`` and ``h1`` (FIML) and ``cluster`` (two-level ML). The
  ML and DWLS objectives take the `SampleStats`; the FIML and two-level objectives take the
  part their likelihood is a function of (the groups' ``patterns``, the ``cluster`` part).
"""

"""Estimation: sample statistics, the LISREL model derived from the parameter table, objectives
and information matrices, and the generic optimiser.

How other estimators plug in (MLR/FIML, DWLS/WLSMV):

* ``Model.from_partable(pt)`` gives the model; ``model.nx`` unique free parameters x
  (``theta_free = model.K @ x``), ``model.implied(x)`` per-group Sigma/mu, and
  ``model.delta(x)`` per-group d[mu, vech Sigma]/dx (``delta_compact`` + ``group_K`` for the
  per-group columns only, which is what makes multi-group fits fast).
* ``optimize(objective, x0)`` minimises any object with ``value(x)``, ``gradient(x)`` and
  ``expected_information(x)`` (E[Hessian]/2, per observation) by Fisher scoring with step
  halving; an optional ``gradient_and_information(x)`` gives both at once (ML: from the rank-2
  factors of Delta, `ml.factored_information`, without forming Delta; ``wrt="free"`` releases
  equality constraints for score tests).
* ``expected_information(model, x, stats)``, ``observed_information(model, x, stats)`` and
  ``hessian_information(objective, x)`` give information matrices per observation
  (vcov = inverse / N).
* ``weighted_delta``, ``moment_weight`` and ``gamma_nt`` are the normal-theory weight and
  asymptotic covariance of the sample moments (for sandwich estimators).
* ``SampleStats`` holds per-group n, cov (divisor N), mean and optionally the raw rows
  (``GroupStats.from_data(x, names, keep_data=True)``) for casewise estimators.
"""

"""The structural-equation engine, one module per lavaan stage.

syntax (parse) -> partable (parameter table; thresholds and scales of ordered indicators) -> data
(the one data step of every estimator: columns, groups, clusters, missing rows, N) ->
samplestats (one `SampleStats`: moments per group, with optional parts for polychorics,
missing-data patterns and two-level cluster statistics) -> model (LISREL matrices from the
table) -> estimators (objective, gradient, information) -> optim (the one optimiser and its
convergence report) -> test (Yuan-Bentler,
Satorra-Bentler, scaled-shifted) -> fit (fit measures) -> result (`CFAResult`). `cfa` validates
the options once and runs the stages with the estimator it looks up in `cfa.ESTIMATORS` (ML,
MLR/FIML, WLSMV/ULSMV, two-level ML: `twolevel` fits it, `estimators.twolevel` holds its
likelihood); `refit` refits a built ML model to new data
sets (Monte Carlo replications).
"""

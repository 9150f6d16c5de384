"""Monte Carlo studies: the replication runner (in-process, local processes or Dask), power
planning for a field test, and dynamic fit-index cut-offs."""
from instrument.montecarlo.population import MomentPopulation, PlanPopulation
from instrument.montecarlo.runner import MonteCarloResult, montecarlo, replication_rng

__all__ = ["montecarlo", "MonteCarloResult", "MomentPopulation", "PlanPopulation",
           "replication_rng"]

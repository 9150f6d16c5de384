"""Monte Carlo studies: the replication runner (in-process, local processes or Dask), power
planning for a field test, and dynamic fit-index cut-offs."""
from instrument.montecarlo.dfi import DFIResult, dynamic_cutoffs
from instrument.montecarlo.power import PowerResult, power
from instrument.montecarlo.population import MomentPopulation, PlanPopulation
from instrument.montecarlo.runner import MonteCarloResult, montecarlo, replication_rng

__all__ = ["montecarlo", "MonteCarloResult", "dynamic_cutoffs", "DFIResult", "power", "PowerResult",
           "MomentPopulation", "PlanPopulation", "replication_rng"]

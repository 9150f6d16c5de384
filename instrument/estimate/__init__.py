"""Estimation: sample statistics, the LISREL model derived from the parameter table, objectives
(ML here; MLR/FIML/DWLS plug into the same optimiser) and information matrices."""

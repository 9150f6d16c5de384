"""Estimation: sample statistics, objectives and optimisers."""

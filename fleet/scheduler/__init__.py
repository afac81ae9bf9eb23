"""The scheduler: which shelf, which robot, which station, in which order."""

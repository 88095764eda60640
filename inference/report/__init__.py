"""Pictures and pages: image grids, plots, the self-contained HTML report of a run."""

"""Run folders: names to objects (build), setup and reload of a run, atomic file I/O."""

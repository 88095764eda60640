"""Config dataclasses (one per component), presets and config files."""

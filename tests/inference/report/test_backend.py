"""The library's figures leave the process's matplotlib backend as the user chose it (a notebook's inline figures
kept showing after a library plot switched the whole process to Agg)."""
import subprocess
import sys

import pytest

CHECK = """
import os, sys
{choose}
from pyro_vae.inference.report.images import pyplot, save_figure
plt = pyplot()
fig = plt.figure()
save_figure(fig, "figure.png")
import matplotlib
print(matplotlib.get_backend().lower())
"""


@pytest.mark.parametrize("choose, backend", [
    ("", "agg"),  # nothing chosen: Agg, no display needed
    ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot", "svg"),  # a script's own, kept
    ("os.environ['MPLBACKEND'] = 'pdf'", "pdf"),  # as IPython sets it for a notebook's inline backend
])
def test_a_library_figure_keeps_the_users_backend(tmp_path, choose, backend):
    proc = subprocess.run([sys.executable, "-c", CHECK.format(choose=choose)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == backend
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"

"""Sphinx configuration of the pyro-vae-toolkit documentation (``make docs``: built offline, warnings as errors).

Pages are MyST Markdown; the tutorials are MyST-NB notebooks kept as text and executed at build time on the
embedded data (cached in ``_build/.jupyter_cache``, so an unchanged tutorial is not run again). The command,
component, refusal and results references are generated from the library's own tables by ``_ext/generated.py``
before the pages are read, never copied by hand.
"""
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # tests.inference.cli.test_bad_input holds the refusal table the reference shows

# The tutorials' kernels inherit this: one thread each (two run at once under -j 2 on a 2-core machine; torch's
# threads fighting over the cores make the tiny runs many times slower)
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pyro_vae.models import __version__  # noqa: E402

project = "pyro-vae-toolkit"
author = "the pyro-vae-toolkit authors"
copyright = "2026, " + author
release = version = __version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "generated",
]
source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "_generated"]  # _generated: included by pages
root_doc = "index"
smartquotes = False  # flags stay as typed: --dump, not an en dash

# MyST
myst_enable_extensions = ["colon_fence", "deflist"]  # no $math$: MathJax would come from a CDN; formulas are Unicode
myst_heading_anchors = 3

# MyST-NB: execute every tutorial at build time; a failing cell fails the build
nb_execution_mode = "cache"
nb_execution_cache_path = os.environ.get("DOCS_NB_CACHE", str(DOCS / "_build" / ".jupyter_cache"))
nb_execution_in_temp = True
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# API reference from the docstrings (numpy or Google style)
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_inherit_docstrings = False  # a class without its own docstring shows none rather than Pyro's
autodoc_mock_imports: list = []
napoleon_numpy_docstring = True
napoleon_google_docstring = True

html_theme = "furo"
html_title = f"pyro-vae-toolkit {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_last_updated_fmt = None
html_show_sourcelink = False

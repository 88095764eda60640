"""The documentation (docs/, README.md): every code block runs (Python) or parses (each ``vae`` line, with the
real parser); the README agrees with the registries; the site builds with no warning, no internal link of the
built HTML is broken, and headless Chromium displays its pages with every image loaded."""
import fcntl
import functools
import html
import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from pyro_vae.inference.cli.main import build_parser, docs_address
from pyro_vae.inference.cli.options import apply_config_file, config_from_args, given_options

from tests.helpers import ROOT

DOCS = ROOT / "docs"
SITE = DOCS / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"] + sorted(
    p for p in DOCS.rglob("*.md") if "_build" not in p.parts and "_generated" not in p.parts)
NOTEBOOKS = [p for p in PAGES if p.read_text().startswith("---\nfile_format: mystnb")]  # executed by the build


def blocks(language: str, pages=PAGES) -> list[tuple[str, str]]:
    """(where, code) of every fenced block of ``language`` in ``pages`` (MyST ``{code-cell}`` blocks are the
    tutorials', which the site build executes)."""
    found = []
    for page in pages:
        for i, code in enumerate(re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.S | re.M)):
            found.append((f"{page.relative_to(ROOT)}#{i}", code))
    return found


EXAMPLES = {p.read_text() for p in (ROOT / "examples").glob("*.py")}
PYTHON = [(where, code) for where, code in blocks("python", [p for p in PAGES if p not in NOTEBOOKS])
          if code not in EXAMPLES]  # an example file shown whole is run by its own test
SHELL = blocks("bash") + blocks("sh") + blocks("console")


def command_lines(code: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and prompts dropped."""
    lines = []
    for line in code.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\$ ", "", line.strip())
        if line and not line.startswith("#"):
            lines.append(line.split("  #")[0].split(" # ")[0].strip())
    return lines


@pytest.mark.parametrize("where, code", PYTHON, ids=[w for w, _ in PYTHON])
def test_every_python_block_runs(where, code, tmp_path):
    """Each block on its own, in a fresh process and an empty folder, as a reader would paste it."""
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{where}:\n{proc.stderr[-3000:]}"


RUN_CONFIG_COMMANDS = ("train", "config")


def test_every_vae_line_of_the_docs_parses_and_its_config_is_accepted():
    """Each ``vae`` line through the real parser and, for the commands that build a run config (unless it comes
    from a file the page only names), through ``RunConfig`` validation: a refused pairing fails here, as
    ``vae`` would refuse it, without loading any data. Scripts and make targets a page names exist."""
    checked, validated = 0, 0
    for where, code in SHELL:
        for line in command_lines(code):
            words = shlex.split(line)
            if words[0] == "vae":
                parser = build_parser()  # one per line, as each vae command builds its own
                args = parser.parse_args(words[1:])  # a UserError (one line) names a flag or value that does not exist
                args.argv = words[1:]
                checked += 1
                if words[1] in RUN_CONFIG_COMMANDS and not {"--config", "--resume"} & set(words):
                    apply_config_file(args, given_options(parser, args.argv))
                    config_from_args(args).validate()
                    validated += 1
            elif words[0] == "python" and len(words) > 1 and words[1].endswith(".py"):
                assert (ROOT / words[1]).is_file(), f"{where}: {words[1]}"
            elif words[0] == "make":
                assert len(words) > 1 and re.search(rf"^{words[1]}:", (ROOT / "Makefile").read_text(), flags=re.M), \
                    f"{where}: {line}"
    assert checked >= 20 and validated >= 10


LANGUAGES = {"python", "bash", "text", "yaml", "toml", "json"}  # python runs, bash parses, the rest is shown


def test_every_code_fence_is_one_the_tests_know():
    """A code block in another language (```py, ```shell, a code-block of one) would be neither run nor parsed:
    refused here. Directives that hold no code (toctree, include, admonitions, autodoc) are free."""
    unknown = []
    for page in PAGES:
        for info in re.findall(r"^ {0,3}[`:]{3,}(\S.*?)\s*$", page.read_text(), flags=re.M):
            words = info.split()
            if words[0] in ("{code-cell}", "{code-block}", "{code}", "{sourcecode}"):
                if words[1:2] not in (["python"], ["bash"], ["text"]):
                    unknown.append(f"{page.relative_to(ROOT)}: {info}")
            elif not words[0].startswith("{") and words[0] not in LANGUAGES:
                unknown.append(f"{page.relative_to(ROOT)}: {info}")
    assert not unknown, unknown


def test_the_readmes_links_point_at_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme) + re.findall(r'src="([^"]+)"', readme)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert targets and not missing, missing


def test_every_example_script_is_shown_by_the_docs_as_the_file_itself():
    """Examples are included (``literalinclude``), never pasted, so a page shows the file the tests run."""
    text = "\n".join(p.read_text() for p in PAGES)
    shown = set(re.findall(r"\{literalinclude\} [./]*examples/([\w.]+)", text))
    examples = {p.name for p in (ROOT / "examples").iterdir() if p.suffix in (".py", ".yaml")}
    assert examples <= shown | {"quickstart.py"}, examples - shown
    readme = (ROOT / "README.md").read_text()
    assert (ROOT / "examples" / "quickstart.py").read_text() in dict(blocks("python", [ROOT / "README.md"])).values()
    assert len(readme.splitlines()) <= 250


def test_the_readme_names_what_the_registries_hold():
    from pyro_vae.guides import GUIDES
    from pyro_vae.inference.objectives import OBJECTIVES
    from pyro_vae.models import LIKELIHOODS, PRIORS

    readme = (ROOT / "README.md").read_text()
    for count, kind in ((len(LIKELIHOODS), "likelihoods"), (len(PRIORS), "priors"), (len(GUIDES), "guides")):
        assert f"{count} {kind}" in readme, kind
    assert all(f"`{name}`" in readme for name in OBJECTIVES.in_order()), OBJECTIVES.in_order()


def test_the_readme_and_getting_started_show_the_same_command_lines():
    readme = {line for _, code in blocks("bash", [ROOT / "README.md"]) for line in command_lines(code)}
    started = {line for _, code in blocks("bash", [DOCS / "getting-started.md"]) for line in command_lines(code)}
    assert {line for line in readme if line.startswith("vae ")} <= started


def test_the_readmes_command_lines_run_as_written(tmp_path):
    """The README's ten lines, each run as a reader would type it, in an empty folder."""
    (code,) = [code for _, code in blocks("bash", [ROOT / "README.md"]) if "vae train --out runs/first" in code]
    for line in command_lines(code):
        words = shlex.split(line)
        proc = subprocess.run([sys.executable, "-m", "pyro_vae.inference.cli", *words[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    first = tmp_path / "runs" / "first"
    for name in ("weights.pt", "evaluation.json", "samples.png", "report.html", "diagnostics"):
        assert (first / name).exists(), name
    assert (tmp_path / "runs" / "second" / "weights.pt").is_file()
    figures = json.loads((first / "evaluation.json").read_text())
    assert figures["log_likelihood"]["num_samples"] == 1000


def test_quickstart_trains_scores_and_samples(tmp_path):
    proc = subprocess.run([sys.executable, "-W", "ignore", str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nats = dict(re.findall(r"^(-ELBO = D \+ R|distortion D|rate R|-log p\(x\), k=100)\s+(-?\d+\.\d+) nats", proc.stdout,
                           flags=re.M))
    neg_elbo, d, r, neg_ll = (float(nats[k]) for k in ("-ELBO = D + R", "distortion D", "rate R", "-log p(x), k=100"))
    assert abs(neg_elbo - (d + r)) < 0.02  # the decomposition, to the printed digits
    assert 0 < neg_ll < neg_elbo  # the importance-sampled bound is tighter than the ELBO
    assert (tmp_path / "runs" / "quickstart" / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_help_ends_with_its_docs_page(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    assert " ".join(parser.format_help().split()).endswith(" ".join(docs_address().split()))
    for name, command in sub.choices.items():
        assert " ".join(command.format_help().split()).endswith(" ".join(docs_address(name).split())), name


# ---- the built site -------------------------------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") == "preconnect"):
                self.links.append(attrs[key])


@functools.lru_cache(maxsize=1)
def built_site() -> Path:
    """``make docs``'s build (incremental: after ``make docs`` only what changed is read again), one build at a
    time: the other pytest-xdist worker waits for it rather than writing the same folders."""
    SITE.parent.mkdir(parents=True, exist_ok=True)
    with open(SITE.parent / ".test-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build()


def _build() -> Path:
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-j", "2", "-b", "html",
                           str(DOCS), str(SITE)], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return SITE


def _parse(page: Path) -> _Links:
    links = _Links()
    links.feed(page.read_text(errors="replace"))
    return links


def test_the_site_builds_and_no_internal_link_is_broken():
    site = built_site()
    pages = {p: _parse(p) for p in site.rglob("*.html")}
    broken = []
    for page, links in pages.items():
        for link in links.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in pages[target].ids:
                broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert not broken, "\n".join(broken[:30])
    for name in ("train", "evaluate", "sample", "diagnose"):  # each command's --help points at an anchor that exists
        assert f"vae-{name}" in pages[site / "reference" / "cli.html"].ids
    assert len(pages) > 40


_CHECK = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="page" src="PAGE" style="width:1200px;height:900px"></iframe>
<script>
const frame = document.getElementById("page");
frame.addEventListener("load", () => setTimeout(() => {
  const doc = frame.contentDocument;
  const images = Array.from(doc.images).map(i => [i.getAttribute("src"), i.complete, i.naturalWidth]);
  document.getElementById("result").textContent = JSON.stringify(
    {title: doc.title, text: doc.body.innerText.length, images: images});
}, 500));
</script></body></html>"""


def _render(site: Path, page: str) -> dict:
    """Open ``page`` of the site, served on localhost, in headless Chromium; what loaded."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def do_GET(self):
            if self.path == "/__check__.html":
                body = _CHECK.replace("PAGE", "/" + page).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--virtual-time-budget=20000", "--window-size=1300,1000"]
        dom = subprocess.run([*flags, "--dump-dom", f"http://127.0.0.1:{server.server_address[1]}/__check__.html"],
                             capture_output=True, text=True, timeout=180).stdout
    finally:
        server.shutdown()
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, flags=re.S)
    assert found and found.group(1) != "pending", dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
@pytest.mark.parametrize("page, title, min_images", [
    ("index.html", "pyro-vae-toolkit", 1),
    ("tutorials/01-train-evaluate-sample.html", "Train, evaluate, sample", 2),
    ("api/models.html", "models", 0),
])
def test_a_page_displays_in_headless_chromium_with_its_figures(page, title, min_images):
    shown = _render(built_site(), page)
    assert title.lower() in shown["title"].lower() and shown["text"] > 500, shown
    assert len(shown["images"]) >= min_images, shown["images"]
    not_shown = [src for src, complete, width in shown["images"] if not (complete and width > 0)]
    assert not not_shown, not_shown

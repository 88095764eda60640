"""How ``main`` ends a command, in this process: an ``OSError`` in one line that says what its errno says
(no space, no permission, or what failed reading or writing), the warnings of a command that ends in its one
line dropped and those of one that succeeds shown, and a signal (SIGINT, SIGTERM) in one line and exit status
130 or 143 with the previous handlers back afterwards. The subprocess side of signals: tests/e2e/test_signals.py."""
import errno
import os
import re
import shutil
import signal
import sys
import tempfile
import warnings

import pytest

from pyro_vae.inference.cli import entry
from pyro_vae.inference.cli import options as cli_options
from pyro_vae.inference.cli.main import os_error_line
from pyro_vae.inference.training.loop import stop_on_signals, stop_signal

from tests.helpers import DATA, vae_main

STORED_RUN = DATA / "run_2026_12_v2"  # a tiny trained run (Z=3, 16 hidden units) that an earlier release wrote


@pytest.fixture
def run_copy(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(STORED_RUN, folder)
    return folder


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _temporaries(folder):
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ---- OSError: the line says what happened ---------------------------------------------------------------------

def test_a_read_failure_is_not_called_a_full_disk(tmp_path):
    with pytest.raises(OSError) as raised:
        open(tmp_path, "rb")  # a folder where a file was expected: EISDIR, a real read failure
    line = os_error_line(raised.value)
    assert raised.value.errno == errno.EISDIR
    assert line == f"cannot read or write {tmp_path}: {os.strerror(errno.EISDIR)}"
    with pytest.raises(OSError) as raised:
        open(tmp_path / "missing", "rb")
    assert os_error_line(raised.value) == f"cannot read or write {tmp_path / 'missing'}: {os.strerror(errno.ENOENT)}"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_space_says_free_space(tmp_path, code):
    line = os_error_line(OSError(code, os.strerror(code), str(tmp_path / "weights.pt")))
    assert line == f"cannot write {tmp_path / 'weights.pt'}: {os.strerror(code)}; free space or choose another folder"


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_permission_and_read_only_say_so(tmp_path, code):
    line = os_error_line(OSError(code, os.strerror(code), str(tmp_path / "a.json")))
    assert line.startswith("cannot ") and f"{tmp_path / 'a.json'}: {os.strerror(code)}; " in line
    assert "free space" not in line
    assert ("writable file system" if code == errno.EROFS else "permissions") in line


def test_an_atomic_writes_temporary_is_named_by_its_target(tmp_path):
    prefix = f".checkpoint.pt.{os.getpid()}."  # .NAME.PID.XXXX.tmp
    fd, temporary = tempfile.mkstemp(dir=tmp_path, prefix=prefix, suffix=".tmp")  # as atomic_write names it
    os.close(fd)
    line = os_error_line(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), temporary))
    assert f"cannot write {tmp_path / 'checkpoint.pt'}: " in line and ".tmp" not in line
    renamed = OSError(errno.EXDEV, os.strerror(errno.EXDEV), temporary, None, str(tmp_path / "weights.pt"))  # os.replace
    assert os_error_line(renamed) == f"cannot read or write {tmp_path / 'weights.pt'}: {os.strerror(errno.EXDEV)}"


def test_an_oserror_without_errno_keeps_its_message():
    assert os_error_line(OSError("cannot identify image file 'x.png'")) == \
        "cannot read or write a file: cannot identify image file 'x.png'"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_failed_write_in_a_command_ends_in_its_one_line(capsys, monkeypatch, run_copy, code):
    """``vae evaluate`` whose result cannot be written (the disk is full, or the device fails as the temporary
    file is created, an error that names it as ``os.open`` does): one line naming the file, not atomic_write's
    temporary, and what happened."""
    real = os.open

    def failing(path, flags, *args, **kwargs):
        if flags & os.O_EXCL and os.path.dirname(os.fspath(path)) == str(run_copy):  # atomic_write's temporary
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real(path, flags, *args, **kwargs)

    out = run_copy / "figures.json"
    monkeypatch.setattr(os, "open", failing)
    status, _, err = vae_main(capsys, "evaluate", run_copy, "--limit", "20", "--json", out)
    assert status == 2
    line = _one_line(err)
    assert line.startswith("vae: error: cannot ") and f"{out}: {os.strerror(code)}" in line
    assert ("free space" in line) == (code == errno.ENOSPC)
    assert not out.exists() and _temporaries(run_copy) == []


def test_a_failed_flush_leaves_no_temporary_and_says_what_failed(capsys, monkeypatch, run_copy):
    """The device fails as the result is flushed (``os.fsync``: an error without a file name, which atomic_write
    names): one line, no 'free space' advice, the temporary file removed and the result not half written."""
    def failing_fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    out = run_copy / "figures.json"
    monkeypatch.setattr(os, "fsync", failing_fsync)
    status, _, err = vae_main(capsys, "evaluate", run_copy, "--limit", "20", "--json", out)
    assert status == 2 and _one_line(err) == f"vae: error: cannot read or write {out}: {os.strerror(errno.EIO)}\n"
    assert not out.exists() and _temporaries(run_copy) == []


# ---- warnings: dropped before a one-line ending, shown after a success -------------------------------------------

def _warning_then(monkeypatch, text):
    """Every command warns ``text`` (as Pyro or PIL would) while its options are read."""
    real = cli_options.apply_config_file

    def warns(args, given):
        warnings.warn(text, UserWarning)
        return real(args, given)

    monkeypatch.setattr(cli_options, "apply_config_file", warns)


def test_warnings_are_dropped_when_a_command_ends_in_its_line(capsys, monkeypatch):
    _warning_then(monkeypatch, "dropped before the refusal")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        status, out, err = vae_main(capsys, "config")  # refused: 'say what to do'
    assert status == 2 and _one_line(err).startswith("vae: error: say what to do")
    assert shown == []


def test_warnings_are_shown_when_a_command_succeeds(capsys, monkeypatch):
    _warning_then(monkeypatch, "shown after the success")

    def to_stderr(message, category, filename, lineno, file=None, line=None):  # as the default writes a warning
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", to_stderr)
        status, out, err = vae_main(capsys, "config", "--dump", "--format", "json")
    assert status == 0 and out.lstrip().startswith("{")
    assert f"{__file__}:" in err and "UserWarning: shown after the success" in err  # where it was raised, what
    with warnings.catch_warnings(record=True) as shown:  # and to a warnings recorder
        warnings.simplefilter("always")
        assert vae_main(capsys, "config", "--dump")[0] == 0
    assert [str(w.message) for w in shown] == ["shown after the success"] and shown[0].category is UserWarning


# ---- signals in this process -------------------------------------------------------------------------------------

def _signal_during_command(monkeypatch, *signums):
    real = cli_options.apply_config_file

    def signalled(args, given):
        for signum in signums:
            os.kill(os.getpid(), signum)
        return real(args, given)

    monkeypatch.setattr(cli_options, "apply_config_file", signalled)


@pytest.mark.parametrize("signum, status, said", [(signal.SIGINT, 130, "vae: interrupted\n"),
                                                  (signal.SIGTERM, 143, "vae: terminated\n")])
def test_a_signal_ends_the_command_in_one_line_and_the_handlers_come_back(capsys, monkeypatch, signum, status, said):
    before = {s: signal.getsignal(s) for s in entry.SIGNALS}
    _signal_during_command(monkeypatch, signum)
    assert vae_main(capsys, "config", "--dump") == (status, "", said)
    assert {s: signal.getsignal(s) for s in entry.SIGNALS} == before


def test_an_ignored_signal_stays_ignored(capsys, monkeypatch):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _signal_during_command(monkeypatch, signal.SIGINT)
        status, out, err = vae_main(capsys, "config", "--dump")
        assert status == 0 and "latent_dim" in out and err == ""
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_training_stops_on_the_first_signal_and_passes_the_second_on():
    """The first signal is a flag (training stops after its step and says how to resume); the second gets the
    previous handler's answer at once, worded for a second signal; the handlers come back after."""
    before = {s: signal.getsignal(s) for s in entry.SIGNALS}
    with pytest.raises(KeyboardInterrupt) as raised:
        with stop_on_signals() as stop_requested:
            assert not stop_requested()
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop_requested() and stop_signal() == signal.SIGTERM
            os.kill(os.getpid(), signal.SIGINT)  # Python's own handler before: KeyboardInterrupt
    assert str(raised.value).startswith("interrupted again: stopped at once")
    assert {s: signal.getsignal(s) for s in entry.SIGNALS} == before
    with stop_on_signals() as stop_requested:
        assert not stop_requested() and stop_signal() is None


def test_a_process_forked_while_a_command_runs_gets_pythons_own_signal_handling():
    """Image decoders and DataLoader workers are forked while the command's handlers are in place: in them SIGINT
    raises KeyboardInterrupt again (torch's worker loop expects it) and SIGTERM ends them silently."""
    with entry.handling_signals(program=False):
        assert signal.getsignal(signal.SIGINT) is entry._handler
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its handlers, then leave at once
            ok = signal.getsignal(signal.SIGINT) is signal.default_int_handler and \
                signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.close(write)
        said = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
    assert said == b"1"


def test_resolve_device_takes_a_torch_device_as_its_name():
    import torch

    from pyro_vae.inference.runs.build import resolve_device

    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_the_one_line_stays_one_line_whatever_a_path_or_value_holds(capsys, tmp_path):
    """A newline in a path (``vae evaluate $'no\\nsuch'``) split the error over two lines; a megabyte of bad value
    was echoed whole."""
    status, _, err = vae_main(capsys, "evaluate", tmp_path / "no\nsuch")
    assert status == 2 and _one_line(err) == f"vae: error: run folder {tmp_path}/no\\nsuch does not exist\n"
    status, _, err = vae_main(capsys, "train", "--likelihood", "x" * 1_000_000, "--out", tmp_path / "out")
    assert status == 2 and _one_line(err).startswith("vae: error: unknown likelihood 'xxx")
    cut = re.fullmatch(r"(.*)\.\.\. \((\d+) characters more\)\n", err)
    assert cut and len(cut[1]) == entry.MAX_LINE and 1_000_000 < entry.MAX_LINE + int(cut[2]) < 1_000_400, err[-80:]

"""One writer per run folder, in this process: a refused new folder is not left behind, and a result of a run
trained anew meanwhile is not written beside the new run. (Against other processes: tests/e2e/test_run_lock.py.)"""
import pytest

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs import lock
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run

from tests.helpers import tiny_run_config, trained_tiny_run


def test_a_refused_new_folder_is_not_left_behind(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(UserError):
        with lock.writing(out):
            raise UserError("bad config")
    assert not out.exists()


def test_a_result_of_a_run_trained_anew_meanwhile_is_not_written_beside_the_new_run(tmp_path):
    """vae evaluate / sample / diagnose / report write into the folder they loaded only if it still holds that
    run: a --force retrain in between (a new config.json) refuses the write in one line, and the retrain
    itself removes what the old run's commands had left (diagnostics/ included)."""
    from pyro_vae.inference.report.outputs import save_samples

    out = tmp_path / "run"
    trained_tiny_run(out)
    run = load_run(out)
    (out / "diagnostics" / "test").mkdir(parents=True)
    (out / "diagnostics" / "summary.json").write_text("{}")
    with run.adding_results():  # still the run that was loaded: written
        save_samples(run, out / "samples.png", n=4)
    assert (out / "samples.png").is_file()
    train_run(tiny_run_config(), out, force=True, quiet=True, plots=False, tensorboard=False)
    assert not (out / "diagnostics").exists()
    new_samples = lock.stamp(out / "samples.png")  # the new run's own, drawn at the end of its training
    with pytest.raises(UserError, match=r"was trained anew while this command ran .* nothing was written"):
        with run.adding_results():
            save_samples(run, out / "samples.png", n=4)
    assert lock.stamp(out / "samples.png") == new_samples
    with run.adding_results(tmp_path / "elsewhere.png"):  # outside the folder: no guard
        save_samples(run, tmp_path / "elsewhere.png", n=4)

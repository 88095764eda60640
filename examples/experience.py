"""A config file, a monitor of one's own, the plots and the HTML report, from a user's script."""
from pathlib import Path

from pyro_vae.inference.config.files import load_run_config
from pyro_vae.inference.training.monitors import Monitor
from pyro_vae.inference.report.html import write_report
from pyro_vae.inference.runs.folder import train_run


class PrintTestELBO(Monitor):  # see the notices, every logged step and each epoch
    def end_epoch(self, run, metrics):
        print(f"epoch {metrics['epoch']}: test ELBO {metrics['test_elbo']:.1f} nats")


config = load_run_config(Path("examples/two_d.yaml"))  # a 2-D latent space, 5 epochs
train_run(config, Path("runs/two-d"), force=True, quiet=True, monitors=[PrintTestELBO()])
print("report:", write_report(Path("runs/two-d")))  # plots, grids, metrics and config in one page

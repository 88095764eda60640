"""Train on your own torch Dataset: each item is an image tensor (C, H, W) in [0, 1], or (image, label)."""
import torch
from torch.utils.data import DataLoader, Dataset

from pyro_vae.inference import RunConfig, importance_log_likelihood, setup, train


class Blobs(Dataset):  # your own Dataset; this one draws 2,000 random 28 x 28 blob images when asked
    def __len__(self):
        return 2000

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        centre = torch.randint(6, 22, (2,), generator=g)
        rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
        blob = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < 25).float()
        return blob[None], i % 10


loader = DataLoader(Blobs(), batch_size=100, shuffle=True, num_workers=2)  # read in 2 worker processes
run = setup(RunConfig.from_dict({"train": {"epochs": 3, "seed": 0}}), data=loader)  # a tenth held out to test
metrics = train(run)
print(f"test ELBO {metrics[-1]['test_elbo']:.1f} nats after {len(metrics)} epochs of batch {run.config.train.batch_size}")
report = importance_log_likelihood(run.model, run.guide, run.data.test_x, num_samples=100)
print(f"log p(x) {report.log_likelihood:.1f} nats (importance sampled, k = 100, {report.num_data} test images)")

"""Data-parallel SVI in this process (inference/training/parallel.py): how a global batch is shared among ranks,
and what cannot train data-parallel. The 2-process runs are tests/e2e/test_distributed.py."""
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_vae.inference.cli.launch import without_option
from pyro_vae.inference.process_group import Context, shard
from pyro_vae.inference.training.trainer import SVITrainer


def test_shards_cover_the_global_batch_and_weights_average_to_one():
    idx = torch.arange(37)
    parts = [shard(idx, Context(r, 2)) for r in range(2)]
    assert sorted(torch.cat([p for p, _ in parts]).tolist()) == list(range(37))
    # weight_r * N / |B_r| summed over ranks is N / |B|: the single-process plate scale
    assert sum(w for _, w in parts) == pytest.approx(1.0)
    assert [w for _, w in parts] == pytest.approx([19 / 37, 18 / 37])
    assert shard(idx[:1], Context(1, 2))[1] == 0.0  # an idle rank contributes nothing
    assert without_option(["train", "--nproc", "2", "--epochs=3", "--nproc=4"], "--nproc") == ["train", "--epochs=3"]


def test_a_model_without_the_data_plates_keywords_is_refused_for_data_parallel_training():
    from pyro_vae.inference.errors import UserError
    from pyro_vae.inference.training.parallel import DataParallelEngine

    def model(x):  # scores its shard as if it were the whole batch: 1/W of the gradient
        pass

    trainer = SVITrainer(model, lambda x: None, Trace_ELBO(), parallel=DataParallelEngine)
    with pytest.raises(UserError, match="must take num_data and subsample"):
        trainer.prepare(((torch.zeros(4, 2),), {}))


def test_a_job_of_more_processes_than_gpus_or_cores_is_refused_before_it_starts(monkeypatch):
    """One process per GPU under NCCL (each takes GPU LOCAL_RANK); on the CPU up to 4 per usable core, at least 8
    (gloo shares cores; a test of a larger job): torchrun would start them all (100000 for --nproc 100000)."""
    from pyro_vae.inference import process_group
    from pyro_vae.inference.errors import UserError

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    process_group.check_processes(2, torch.device("cuda"))
    with pytest.raises(UserError, match=r"^--nproc 3 is more than the CUDA GPUs here .*use --nproc 2 or fewer$"):
        process_group.check_processes(3, torch.device("cuda"))
    monkeypatch.setattr(process_group, "usable_cores", lambda: 4)
    process_group.check_processes(16, torch.device("cpu"))
    with pytest.raises(UserError, match=r"^--nproc 17 is more than 4 per core this process may use \(4\), or 8; "
                                        r"use --nproc 16 or fewer$"):
        process_group.check_processes(17, torch.device("cpu"))
    monkeypatch.setattr(process_group, "usable_cores", lambda: 1)
    process_group.check_processes(8, torch.device("cpu"))
    with pytest.raises(UserError, match=r"use --nproc 8 or fewer$"):
        process_group.check_processes(9, torch.device("cpu"))

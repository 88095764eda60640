"""The one shim into Pyro's internals (inference/training/pyro_compat.py) fails loudly if a release changes it."""
import inspect

import pyro
import pyro.infer.trace_elbo
import pyro.infer.trace_mean_field_elbo
import torch

from pyro_vae.inference.training import pyro_compat


def test_the_installed_pyro_is_a_release_the_shim_was_checked_with():
    assert pyro_compat.supported(), pyro_compat.unsupported_reason()


def test_pyros_losses_still_read_their_value_through_the_names_the_shim_rebinds():
    for module, cls in ((pyro.infer.trace_elbo, pyro.infer.Trace_ELBO),
                        (pyro.infer.trace_mean_field_elbo, pyro.infer.TraceMeanField_ELBO)):
        source = inspect.getsource(cls.differentiable_loss) + inspect.getsource(cls)
        for name in pyro_compat.PATCHED_NAMES:
            assert callable(getattr(module, name)), (module.__name__, name)
            assert f"{name}(" in source, (cls.__name__, name)


def test_the_shim_keeps_the_value_and_restores_pyro_afterwards():
    originals = [getattr(m, n) for m in pyro_compat.PATCHED_MODULES for n in pyro_compat.PATCHED_NAMES]
    value = torch.tensor(2.5, requires_grad=True)
    with pyro_compat.losses_as_tensors():
        kept = pyro.infer.trace_elbo.torch_item(value)
        assert torch.is_tensor(kept) and float(kept) == 2.5 and not kept.requires_grad
    assert [getattr(m, n) for m in pyro_compat.PATCHED_MODULES for n in pyro_compat.PATCHED_NAMES] == originals
    assert pyro.infer.trace_elbo.torch_item(value) == 2.5

"""A user's own SVI script: the library's model, guide and data, Pyro's SVI loop."""
import pyro
from pyro.infer import SVI, Trace_ELBO

from pyro_vae.guides import DiagonalNormalGuide
from pyro_vae.inference import DataConfig, MinibatchStream, evaluate_elbo, load_dataset, prepare
from pyro_vae.models import BernoulliLikelihood, MLPDecoder, MLPEncoder, StandardNormalPrior, VAEModel

data = prepare(load_dataset(DataConfig()), binarize="dynamic")  # 4,500 / 500 embedded MNIST digits
pyro.set_rng_seed(0)
event, Z = data.event_shape, 20
model = VAEModel(StandardNormalPrior(Z), MLPDecoder(Z, event), BernoulliLikelihood(event))
guide = DiagonalNormalGuide(MLPEncoder(event, 2 * Z), Z)

pyro.clear_param_store()
svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=Trace_ELBO())
batches = MinibatchStream(data.train_x, batch_size=128, dynamic=True)
for epoch in range(3):
    for idx, x in batches:  # plate("data", N, subsample=idx) scales the batch to the full data set
        svi.step(x, num_data=batches.num_data, subsample=idx)
    report = evaluate_elbo(model, guide, data.test_x)
    print(f"epoch {epoch}: test ELBO {report.elbo:.1f} = {report.reconstruction:.1f} - KL {report.kl:.1f} nats")

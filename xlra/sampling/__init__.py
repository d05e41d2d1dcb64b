"""Sampling: the jitted KV-cache sampler and shared-prefix best-of-n.

  Sampler(graphdef, SamplingConfig(...), mesh)          one compiled decode loop per shape bucket
  sampler(params, prompts, rng, num_samples=n, prompt_ids=None, first_sample=0) -> SampleOutput
  SampleOutput: tokens [R, T], logprobs [R, T] (log_softmax(logits / T), unfiltered), lengths [R], stopped [R];
                row i * n + j is sample first_sample + j of prompt i
  xlra.sampling.best_of_n.best_of_n(sampler, params, prompts, rng, n, score) -> BestOfNResult
  kl_bound(n) = log n - (n - 1) / n

The `xlra bon` job lives in xlra.sampling.job (imported on demand: it reads checkpoints and data).
"""

# The best_of_n function stays in its module: exported here, its name would hide the module.
from xlra.sampling.best_of_n import MAX_N, BestOfNResult, kl_bound
from xlra.sampling.sampler import SampleOutput, Sampler, SamplingConfig

__all__ = ["MAX_N", "BestOfNResult", "SampleOutput", "Sampler", "SamplingConfig", "kl_bound"]

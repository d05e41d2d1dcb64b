"""Sampling: the jitted KV-cache sampler and shared-prefix best-of-n.

  Sampler(graphdef, SamplingConfig(...), mesh)          one compiled decode loop per shape bucket
  sampler(params, prompts, rng, num_samples=n, prompt_ids=None, first_sample=0) -> SampleOutput
  SampleOutput: tokens [R, T], logprobs [R, T] (log_softmax(logits / T), unfiltered), lengths [R], stopped [R];
                row i * n + j is sample first_sample + j of prompt i
  best_of_n(sampler, params, prompts, rng, n, score) -> BestOfNResult;  kl_bound(n) = log n - (n - 1) / n

The `xlra bon` job lives in xlra.sampling.job (imported on demand: it reads checkpoints and data).
"""

from xlra.sampling.best_of_n import MAX_N, BestOfNResult, best_of_n, kl_bound
from xlra.sampling.sampler import SampleOutput, Sampler, SamplingConfig

__all__ = ["MAX_N", "BestOfNResult", "SampleOutput", "Sampler", "SamplingConfig", "best_of_n", "kl_bound"]

"""Real-size presets, checked only through nnx.eval_shape: parameter counts of the released checkpoints."""

from __future__ import annotations

import jax
import pytest
from flax import nnx

from xlra.models.presets import PRESETS, PUBLISHED_PARAMS
from xlra.models.transformer import Transformer


def test_published_counts_are_the_model_cards():
  # Hand-copied from the model cards / safetensors metadata, so a typo in presets.py cannot hide here.
  assert PUBLISHED_PARAMS == {
      "gemma2_2b": 2_614_341_888, "gemma2_9b": 9_241_705_984, "gemma3_1b": 999_885_952,
      "qwen2.5_0.5b": 494_032_768, "qwen2.5_1.5b": 1_543_714_304, "qwen2.5_3b": 3_085_938_688,
      "qwen2.5_7b": 7_615_616_512, "qwen3_0.6b": 596_049_920, "llama3_8b": 8_030_261_248}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_eval_shape_parameter_count(name):
  model = nnx.eval_shape(lambda: Transformer(PRESETS[name], rngs=nnx.Rngs(0)))
  count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert abs(count / PUBLISHED_PARAMS[name] - 1) <= 0.01, (name, count)

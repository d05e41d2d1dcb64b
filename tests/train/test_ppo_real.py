"""`xlra ppo` on a user's own checkpoint and prompts: it trains on those prompts with the checkpoint's own
tokenizer, and refuses (before compiling) the testbed with that policy, a tokenizer that does not fit the
policy's embedding rows, and an RM saved with another tokenizer."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from flax import nnx
from models.hf_testing import chat_checkpoint

from train.conftest import load_config  # tests/ is on sys.path (rootdir conftest)
from xlra import files
from xlra.data.tokenizer import encode_prompt, load_tokenizer, same_tokenizer, save_tokenizer, train_bpe
from xlra.models import convert
from xlra.models.checkpoint_io import load_model, save_model
from xlra.models.heads import ScalarModel
from xlra.train import ppo_job

TEXTS = ["How do I keep basil alive on a windowsill?", "Wie koche ich Reis?", "What is a good first bike?",
         "Explain tides to a child.", "Name three rivers in Europe.", "Why is the sky blue?"]
EN = [("oa-1", TEXTS[0]), ("oa-3", TEXTS[2]), ("oa-4", TEXTS[3]), ("oa-5", TEXTS[4]), ("oa-6", TEXTS[5])]


@pytest.fixture(scope="module")
def user(tmp_path_factory):
  """A converted Qwen2 policy carrying its own tokenizer, an RM on the same tokenizer, and prompt files."""
  root = tmp_path_factory.mktemp("ppo_real")
  tok = chat_checkpoint(root / "hf", TEXTS * 6)
  cc = load_config("convert", "hf_to_xlra")
  cc.src = str(root / "hf")
  convert.run(cc, str(root / "policy"))  # root/policy/model: weights + the checkpoint's tokenizer files
  policy = load_model(str(root / "policy" / "model"))
  save_model(ScalarModel(policy.cfg, rngs=nnx.Rngs(1)), str(root / "rm"))
  save_tokenizer(tok, str(root / "rm"))
  files.write_json(str(root / "rm" / "reward_stats.json"), {"mean": 0.0, "std": 1.0, "n": 4, "source": "test"})
  rows = [{"id": i, "lang": "en", "prompt": p, "task": "dialog"} for i, p in EN]
  rows.insert(1, {"id": "oa-2", "lang": "de", "prompt": TEXTS[1], "task": "dialog"})  # another language: left out
  (root / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return root, tok


def _config(root):
  c = load_config("ppo", "tiny")
  c.update(dict(lang="en", prompts_jsonl=str(root / "prompts.jsonl"), eval_prompts_jsonl=str(root / "prompts.jsonl"),
                iterations=1, prompts_per_iteration=4, samples_per_prompt=2, max_new_tokens=6, epochs=1,
                minibatches=1, eval_prompts=4, eval_every=1, value_warmup_iterations=0, checkpoint_every=1,
                max_prompt_len=64))
  return c


def test_ppo_trains_on_the_given_prompts_with_the_checkpoints_tokenizer(user, tmp_path, monkeypatch):
  root, tok = user
  seen = []
  iteration = ppo_job.PPOTrainer.iteration

  def spy(self, prompts, it, **kw):
    seen.append((list(map(list, prompts)), self.sampling.eos_id, self.sampling.pad_id))
    return iteration(self, prompts, it, **kw)

  monkeypatch.setattr(ppo_job.PPOTrainer, "iteration", spy)
  monkeypatch.setattr("xlra.train.ppo_prompts.prepare", lambda *a, **k: pytest.fail("built testbed data"))
  policy = str(root / "policy")
  result = ppo_job.train_ppo(_config(root), str(tmp_path / "run"), policy, str(root / "rm"))

  assert result.prompts == str(root / "prompts.jsonl")
  assert result.tokenizer == os.path.join(policy, "model")  # the tokenizer saved with the policy
  allowed = {tuple(encode_prompt(tok, p)) for _, p in EN}
  (prompts, eos, pad), = seen
  assert len(prompts) == 4 and {tuple(p) for p in prompts} <= allowed
  assert (eos, pad) == (tok.eos_token_id, tok.pad_token_id)
  outs = files.read_jsonl(result.outputs)
  assert [o["id"] for o in outs] == [i for i, _ in EN[:4]] and {o["lang"] for o in outs} == {"en"}
  assert "gold_q" not in result.last and "rm_score" in result.last and "rm_score" in result.evals[-1]
  assert same_tokenizer(load_tokenizer(result.model_dir), tok)  # PPO's export carries it on


def _refuses(monkeypatch, match, *args, **kw):
  monkeypatch.setattr(ppo_job, "PPOTrainer", lambda *a, **k: pytest.fail("compiled before refusing"))
  with pytest.raises(ValueError, match=match):
    ppo_job.train_ppo(*args, **kw)


def test_testbed_prompts_with_a_real_policy_are_refused(user, tmp_path, monkeypatch, testbed_bundle):
  root, _ = user
  config = _config(root)
  config.prompts_jsonl = config.eval_prompts_jsonl = ""
  _refuses(monkeypatch, r"config.prompts_jsonl is empty.*testbed.*another one \(\d+ tokens", config,
           str(tmp_path / "run"), str(root / "policy"), str(root / "rm"), data=testbed_bundle)


def test_a_tokenizer_larger_than_the_embedding_rows_is_refused(user, tmp_path, monkeypatch):
  root, _ = user
  policy = tmp_path / "policy"
  shutil.copytree(root / "policy" / "model", policy)
  for f in os.listdir(policy):
    if f.startswith(("tokenizer", "special_tokens", "chat_template", "vocab", "merges")):
      os.remove(policy / f)
  train_bpe(TEXTS * 40 + [t[::-1] for t in TEXTS] * 40, 500, str(policy), min_frequency=1)
  rows = load_model(str(policy)).cfg.vocab_size
  _refuses(monkeypatch, rf"has \d{{3}} tokens but config.policy_checkpoint=.* has {rows} embedding rows",
           _config(root), str(tmp_path / "run"), str(policy), str(root / "rm"))


def test_an_rm_with_another_tokenizer_is_refused(user, tmp_path, monkeypatch):
  root, _ = user
  rm = tmp_path / "rm"
  shutil.copytree(root / "rm", rm)
  for f in os.listdir(rm):
    if f.startswith(("tokenizer", "special_tokens", "chat_template")):
      os.remove(rm / f)
  train_bpe([t.upper() for t in TEXTS] * 6, 300, str(rm), min_frequency=1)
  _refuses(monkeypatch, "config.rm_checkpoint=.* another tokenizer", _config(root), str(tmp_path / "run"),
           str(root / "policy"), str(rm))

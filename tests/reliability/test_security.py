"""Security: weights only from safetensors or orbax (no pickle anywhere in the package, and a pickle
checkpoint is refused without being opened), remote code never executed, and an API key that comes
only from the environment and ends up in no file of an evaluation's workdir and in nothing it prints."""

from __future__ import annotations

import ast
import json
import os
import shutil

import pytest

import reliability_tally as tally
from reliability_cli import REPO, Job, eval_inputs

PACKAGE_DIRS = ("xlra", "configs")
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _sources() -> list[str]:
  out = []
  for top in PACKAGE_DIRS:
    for d, _, names in os.walk(os.path.join(REPO, top)):
      out += [os.path.join(d, n) for n in names if n.endswith(".py")]
  assert len(out) > 40, "the package sources were not found"
  return sorted(out)


def _dotted(node: ast.AST) -> str:
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute):
    return f"{_dotted(node.value)}.{node.attr}"
  return "?"


def _findings(path: str) -> list[str]:
  """Every pickle import, torch.load / np.load(allow_pickle=True), eval/exec of a string, and every
  trust_remote_code that is not the constant False."""
  tree = ast.parse(open(path, encoding="utf-8").read(), path)
  rel, bad = os.path.relpath(path, REPO), []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      bad += [f"{rel}:{node.lineno} imports {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLERS]
    elif isinstance(node, ast.ImportFrom) and node.module:
      if node.module.split(".")[0] in UNPICKLERS or (node.module == "torch" and any(a.name == "load" for a in node.names)):
        bad.append(f"{rel}:{node.lineno} imports from {node.module}")
    elif isinstance(node, ast.Call):
      name = _dotted(node.func)
      if name in ("torch.load", "eval", "exec") or name.endswith(("pickle.load", "pickle.loads")):
        bad.append(f"{rel}:{node.lineno} calls {name}")
      for kw in node.keywords:
        constant_false = isinstance(kw.value, ast.Constant) and kw.value.value is False
        if kw.arg == "trust_remote_code" and not constant_false:
          bad.append(f"{rel}:{node.lineno} passes trust_remote_code={ast.unparse(kw.value)}")
        if kw.arg == "allow_pickle" and not constant_false:
          bad.append(f"{rel}:{node.lineno} passes allow_pickle={ast.unparse(kw.value)}")
  return bad


def test_no_code_path_unpickles_or_runs_remote_code():
  findings = [f for path in _sources() for f in _findings(path)]
  assert findings == []


def test_the_scan_sees_what_it_looks_for(tmp_path):
  """The checker itself: each forbidden form in a planted file is reported."""
  planted = tmp_path / "planted.py"
  planted.write_text("import pickle\nfrom torch import load\nimport numpy as np\nimport torch\n"
                     "torch.load('x')\nnp.load('x', allow_pickle=True)\neval('1')\n"
                     "AutoTokenizer.from_pretrained('d', trust_remote_code=True)\nf(trust_remote_code=flag)\n"
                     "g(trust_remote_code=False)\n")
  assert len(_findings(str(planted))) == 7


@pytest.fixture
def hf_dir(tmp_path):
  """A tiny Llama config.json next to a malicious pickle `pytorch_model.bin` that would create
  MARKER if it were ever unpickled."""
  import transformers

  d = tmp_path / "pickled_ckpt"
  d.mkdir()
  cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
  (d / "config.json").write_text(cfg.to_json_string())
  marker = tmp_path / "MARKER"
  payload = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")  # protocol-0 pickle: os.system(...)
  (d / "pytorch_model.bin").write_bytes(payload)
  import pickle  # the payload is armed: unpickling it does create the marker
  pickle.loads(payload)
  assert marker.exists()
  marker.unlink()
  return str(d), marker


def test_a_pickle_checkpoint_is_refused_unopened(hf_dir):
  from xlra.eval.checkpoints import load_lm
  from xlra.models.hf import load_hf

  path, marker = hf_dir
  for load in (lambda: load_hf(path), lambda: load_lm(path, "auto", "float32", None)):
    with pytest.raises(FileNotFoundError, match="model.safetensors.*pickle checkpoints are not read"):
      load()
  assert not marker.exists()


def test_a_tokenizer_asking_for_remote_code_does_not_run_it(shared_data, tmp_path):
  from xlra.data.tokenizer import load_tokenizer

  d = tmp_path / "tokenizer"
  shutil.copytree(os.path.join(shared_data, "data", "tokenizer"), d)
  marker = tmp_path / "MARKER"
  (d / "evil_tokenizer.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                       "from transformers import PreTrainedTokenizerFast\n"
                                       "class EvilTokenizer(PreTrainedTokenizerFast):\n  pass\n")
  cfg = json.loads((d / "tokenizer_config.json").read_text())
  cfg.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": [None, "evil_tokenizer.EvilTokenizer"]})
  (d / "tokenizer_config.json").write_text(json.dumps(cfg))
  try:
    load_tokenizer(str(d))
  except (ValueError, OSError) as e:  # refusing is fine; running the file is not
    assert "trust_remote_code" in str(e) or "EvilTokenizer" in str(e)
  assert not marker.exists()


def test_judge_key_only_from_the_environment():
  import dataclasses

  from xlra.eval.judges.http import HttpJudgeConfig
  from reliability_cli import config_module

  fields = {f.name for f in dataclasses.fields(HttpJudgeConfig)}
  assert {f for f in fields if "key" in f} == {"api_key_env"}
  http = config_module("eval").get_config("http").judge.http
  assert {k for k in http.keys() if "key" in k} == {"api_key_env"} and http.api_key_env == ""


def test_planted_api_key_is_in_no_file_and_no_output_of_an_evaluation(tmp_path, cli_env, fake_judge):
  key = "sk-PLANTED-reliability-7f3a9c1e5b"
  base, systems = eval_inputs(tmp_path, 6)
  # The server echoes the request headers (with the key) in its error bodies: call 2 is a 500 that
  # is retried, call 5 a 401 that is reported; both error texts pass through the judge.
  fake_judge.faults = {2: ("status", 500), 5: ("status", 401)}
  workdir = tmp_path / "work"
  job = Job("eval_key", "eval", "eval.py:http", str(workdir), [
      f"--config.baseline.outputs={base}", f"--config.system_outputs={systems}",
      f"--config.judge.http.base_url={fake_judge.base_url}", "--config.judge.http.model=fake",
      "--config.judge.http.api_key_env=XLRA_RELIABILITY_JUDGE_KEY", "--config.judge.http.backoff=0.01",
      "--config.judge.http.max_concurrency=1", "--config.winrate.n_boot=100"],
      str(tmp_path / "logs"), env={**cli_env, "XLRA_RELIABILITY_JUDGE_KEY": key})
  job.run()
  assert all(h.get("Authorization") == f"Bearer {key}" for h in fake_judge.headers)  # it was used
  rows = [json.loads(line) for name in ("a", "b") for line in open(workdir / "judgements" / f"{name}.jsonl")]
  assert sum(r["error_kind"] == "http" for r in rows) == 1  # the 401's error (with the echo) was kept
  checked, leaks = [job.log], []
  for d, _, names in os.walk(workdir):
    checked += [os.path.join(d, n) for n in names]
  for path in checked:
    with open(path, "rb") as f:
      if key.encode() in f.read():
        leaks.append(os.path.relpath(path, tmp_path))
  tally.add(key_leaks=len(leaks))
  tally.note(f"planted API key searched in {len(checked)} files (workdir + captured output): {len(leaks)} hits")
  assert len(checked) >= 6 and leaks == []

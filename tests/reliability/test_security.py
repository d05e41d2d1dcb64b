"""Security: weights only from safetensors or orbax (no pickle anywhere in the package, and a pickle
checkpoint is refused without being opened), remote code never executed, and an API key that comes
only from the environment and ends up in no file of an evaluation's workdir and in nothing it prints,
not even in part: a server echoing it across the cut of an error message, a parse message or a non-JSON
body, and a redirect to another server (which must receive nothing)."""

from __future__ import annotations

import ast
import json
import os
import shutil

import pytest

import reliability_tally as tally
from reliability_cli import REPO, Job, config_module, eval_inputs, files_under, key_chars_written

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
      "--config.judge.http.max_concurrency=1", "--config.winrate.n_boot=100",
      "--config.judge.max_failure_share=1.0"],  # the 401 is a kept failure, here on purpose
      str(tmp_path / "logs"), env={**cli_env, "XLRA_RELIABILITY_JUDGE_KEY": key})
  job.run()
  assert all(h.get("Authorization") == f"Bearer {key}" for h in fake_judge.headers)  # it was used
  rows = [json.loads(line) for name in ("a", "b") for line in open(workdir / "judgements" / f"{name}.jsonl")]
  assert sum(r["error_kind"] == "http" for r in rows) == 1  # the 401's error (with the echo) was kept
  checked = [job.log] + files_under(str(workdir))
  leaks = key_chars_written(checked, key)
  tally.add(key_leaks=len(leaks), key_chars_written=sum(leaks.values()))
  tally.note(f"planted API key searched in {len(checked)} files (workdir + captured output): {len(leaks)} hits")
  assert len(checked) >= 6 and leaks == {}


def test_key_echoed_across_every_cut_or_sent_after_a_redirect_is_written_nowhere(tmp_path, fake_judge, monkeypatch,
                                                                                caplog):
  from eval.conftest import FakeOpenAI
  from xlra.eval import job

  key = "sk-PLANTED-cuts-4b8e1f9a2c7d5e3f0a1b"
  monkeypatch.setenv("XLRA_RELIABILITY_JUDGE_KEY", key)
  caplog.set_level("DEBUG")
  elsewhere = FakeOpenAI()  # counts what reaches it, with or without the key
  # Each puts "Bearer KEY" across a cut: 300 characters of an error body, 200 of a non-JSON body, 100 of a
  # reply's text (a parse failure, cached); then a redirect to another 127.0.0.1 server.
  at = lambda cut: cut - len("Bearer ") - len(key) // 2
  faults = [("echo", 500, at(300)), ("echo", 401, at(300) + 10), ("raw", b"x" * at(200) + b"{auth}" + b"y" * 300),
            ("garbage", "x" * at(100) + "{auth}"), ("redirect", elsewhere.base_url + "/chat/completions")]
  fake_judge.fault_fn = lambda n, body: faults[(n - 1) // 2] if n <= 2 * len(faults) else None
  c = config_module("eval").get_config("http")
  c.baseline.outputs, c.system_outputs = eval_inputs(tmp_path, 6)  # 12 judgements
  h = c.judge.http
  h.base_url, h.model, h.api_key_env, h.max_retries, h.backoff, h.max_concurrency = (
      fake_judge.base_url, "fake", "XLRA_RELIABILITY_JUDGE_KEY", 0, 0.01, 1)
  c.judge.max_failure_share, c.winrate.n_boot = 1.0, 100
  workdir = tmp_path / "work"
  try:
    job.run(c, str(workdir))
  finally:
    elsewhere.close()
  rows = [json.loads(line) for name in ("a", "b") for line in open(workdir / "judgements" / f"{name}.jsonl")]
  assert sum(r["p_a"] is None for r in rows) == 2 * len(faults) and fake_judge.with_key() == fake_judge.calls
  assert elsewhere.calls == 0 and elsewhere.with_key() == 0
  (tmp_path / "captured.log").write_text(caplog.text)
  checked = files_under(str(workdir)) + [str(tmp_path / "captured.log")]
  leaks = key_chars_written(checked, key)
  tally.add(judge_faults_injected=2 * len(faults), key_leaks=len(leaks), key_chars_written=sum(leaks.values()))
  tally.note(f"API key echoed across every cut and redirected: {len(checked)} files searched, "
             f"{sum(leaks.values())} key characters found, {elsewhere.with_key()} requests with the key elsewhere")
  assert leaks == {}

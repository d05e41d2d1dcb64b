"""Bad input, property-based (hypothesis): dataset rows for the real-data loaders and the encoder, and
config values for the training loop, the mesh, PPO and the data. Every input ends in a clean result,
a counted skip, or a ValueError that names the field (checked against an independent oracle of what
is wrong), never a TypeError/KeyError/AttributeError from deep inside, and never a failure in jit."""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile

import ml_collections
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import reliability_tally as tally
from reliability_cli import config_module
from xlra.data import batching
from xlra.data.skips import EmptySplitError, SkipCounter
from xlra.data.sources import LANGUAGE_NAMES, decode_escapes, load_oasst, load_summarization, read_ratings
from xlra.data.sources.seahorse import HEADER

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values of the wrong type, for any field.
ODD = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)


def _counted(bad: bool, clear: bool = True) -> None:
  if bad:
    tally.add(bad_inputs_tried=1, bad_inputs_clear=int(clear))


# -- dataset rows ---------------------------------------------------------------------------------------

def _sometimes_odd(s):
  """Mostly `s`, now and then a value of the wrong type: deep fields get reached, and broken."""
  return st.one_of(s, s, s, s, ODD)


def _message(replies):
  odd = _sometimes_odd
  return st.fixed_dictionaries({}, optional={
      "message_id": odd(st.text(alphabet="abc123", min_size=1, max_size=4)),
      "role": odd(st.sampled_from(["prompter", "assistant", "system"])), "text": odd(TEXT),
      "lang": odd(st.sampled_from(["en", "de", "en-US", "EN", "xx", "", "german"])),
      "deleted": odd(st.just(False)), "review_result": odd(st.just(True)),
      "rank": odd(st.one_of(st.none(), st.integers(0, 3))), "replies": replies})


MESSAGES = st.recursive(_message(st.just([])), lambda kids: _message(_sometimes_odd(st.lists(kids, max_size=3))),
                        max_leaves=8)
TREES = st.lists(st.one_of(st.fixed_dictionaries(
    {"prompt": st.one_of(MESSAGES, ODD)},
    optional={"tree_state": st.sampled_from(["ready_for_export", "growing"]), "message_tree_id": TEXT}), ODD),
    max_size=4)


def _tree(root_fields: dict | None = None, **reply_fields) -> list[dict]:
  """One ready tree: a prompt with two ranked replies; the fields given replace the prompt's or the
  second reply's values (the shapes hypothesis found that crashed the loader)."""
  def reply(mid, rank, **kw):
    return {"message_id": mid, "role": "assistant", "text": f"reply {mid}", "lang": "en", "deleted": False,
            "review_result": True, "rank": rank, **kw}
  second = reply("b", 1) | reply_fields
  root = {"message_id": "r", "role": "prompter", "text": "question", "lang": "en", "deleted": False,
          "review_result": True, "replies": [reply("a", 0), second], **(root_fields or {})}
  return [{"tree_state": "ready_for_export", "prompt": root}]


@settings(SETTINGS, max_examples=150)
@given(TREES)
@example(_tree({"role": [1]})).via("found: an unhashable role")
@example(_tree(rank=[1])).via("found: a list rank sorted against ints")
@example(_tree(rank="1")).via("found: a string rank")
@example(_tree({"lang": 3})).via("found: a number for a language code")
@example(_tree({"replies": 5})).via("found: replies that are not a list")
@example(_tree(message_id=[1])).via("found: a list message id")
@example(_tree(review_result="yes")).via("a review that is neither true nor false")
def test_oasst_trees_of_any_shape_are_loaded_or_skipped_and_counted(trees):
  try:
    pairs, sft, skips = load_oasst(trees, languages=["en", "de"])
  except EmptySplitError as e:
    assert "is empty after filtering" in str(e)
    _counted(True)
    return
  assert skips.kept == len(pairs) > 0
  for r in pairs + sft:
    assert r["lang"] in ("en", "de") and isinstance(r["prompt"], str) and r["prompt"].strip()
    assert all(isinstance(m["content"], str) and m["role"] in ("user", "assistant") for m in r["messages"])
  for p in pairs:
    assert isinstance(p["chosen"], str) and isinstance(p["rejected"], str)
  _counted(skips.skipped > 0)


SUMMARY_ROWS = st.lists(st.one_of(st.dictionaries(
    st.sampled_from(["text", "document", "article", "summary", "target", "id", "gem_id", "other"]),
    st.one_of(TEXT, ODD, st.lists(TEXT, max_size=2)), max_size=4), ODD), max_size=6)


@SETTINGS
@given(SUMMARY_ROWS, st.sampled_from(["de", "en", "english", "xx", ""]))
def test_summarization_rows_of_any_shape_are_loaded_or_skipped_and_counted(rows, lang):
  try:
    records, skips = load_summarization(rows, lang, "jsonl", max_output_tokens=8)
  except EmptySplitError as e:
    assert "is empty after filtering" in str(e)
    _counted(True)
    return
  except ValueError as e:
    assert lang not in ("de", "en", "english") and "unknown language code" in str(e) and repr(lang) in str(e)
    _counted(True)
    return
  assert lang in ("de", "en", "english") and skips.kept == len(records) > 0
  for r in records:
    assert isinstance(r["prompt"], str) and isinstance(r["response"], str) and r["response"].strip()
    assert r["lang"] in LANGUAGE_NAMES and isinstance(r["id"], str)
  _counted(skips.skipped > 0)


TSV_CELL = st.lists(st.sampled_from(list('ab "\\u0041\t\n\r,') + ["Yes", "No", "Unsure", "en-US", "de", "yes"]),
                   max_size=6).map("".join)


@SETTINGS
@given(st.lists(st.lists(TSV_CELL, min_size=8, max_size=11), max_size=6), st.booleans())
def test_seahorse_tsv_lines_of_any_shape_are_read_or_skipped_and_counted(rows, raw):
  """Rows written through csv (valid quoting) or joined raw (broken quoting, stray tabs/newlines)."""
  buf = io.StringIO()
  buf.write("\t".join(HEADER) + "\n")
  if raw:
    buf.write("".join("\t".join(r) + "\n" for r in rows))
  else:
    csv.writer(buf, delimiter="\t", quotechar='"', lineterminator="\n").writerows(rows)
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "validation.tsv")
    with open(path, "w", encoding="utf-8", newline="") as f:
      f.write(buf.getvalue())
    try:
      ratings, skips = read_ratings(path, max_output_tokens=10)
    except EmptySplitError as e:
      assert "is empty after filtering" in str(e)
      _counted(True)
      return
  for r in ratings:
    assert isinstance(r["label"], bool) and r["lang"] in LANGUAGE_NAMES and r["summary"]
  _counted(skips.skipped > 0)


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list('\\u0123456789abcdefDXx"n /')), max_size=30))
def test_seahorse_escapes_decode_without_raising(text):
  out = decode_escapes(text)
  assert isinstance(out, str)
  out.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def tokenizer(shared_data):
  from xlra.data.tokenizer import load_tokenizer

  return load_tokenizer(os.path.join(shared_data, "data", "tokenizer"))


GOOD_MESSAGES = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": TEXT}),
                         min_size=1, max_size=3)
RECORDS = st.lists(st.fixed_dictionaries({"id": st.text(alphabet="xyz", max_size=3)}, optional={
    "prompt": st.one_of(TEXT, TEXT, ODD), "response": st.one_of(TEXT, TEXT, ODD),
    "messages": st.one_of(GOOD_MESSAGES, st.lists(st.one_of(ODD, TEXT), max_size=2), st.lists(
        st.fixed_dictionaries({"role": st.one_of(TEXT, ODD), "content": st.one_of(TEXT, ODD)}), max_size=2))}),
    min_size=1, max_size=4)


def _record_problems(rec: dict) -> set[str]:
  """Oracle: the fields of a record that cannot be encoded."""
  bad = set()
  msgs = rec.get("messages")
  if msgs:
    ok = isinstance(msgs, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                        and m.get("role") in ("system", "user", "assistant") for m in msgs)
    if not ok:
      bad.add("messages")
  elif not isinstance(rec.get("prompt"), str):
    bad.add("prompt")
  if not isinstance(rec.get("response"), str):
    bad.add("response")
  return bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(records=RECORDS, max_len=st.integers(-2, 40))
def test_encoding_records_names_the_bad_field_or_counts_the_skip(tokenizer, records, max_len):
  problems = [(_record_problems(r), r["id"]) for r in records]
  skips = SkipCounter("fuzzed records")
  try:
    out = batching.encode_records(tokenizer, records, ("response",), max_len, skips)
  except EmptySplitError as e:
    assert not any(p for p, _ in problems) and "too_long" in str(e)
    _counted(True)
    return
  except ValueError as e:
    first = next((p, rid) for p, rid in problems if p)
    assert any(f"'{field}'" in str(e) for field in first[0]) and repr(first[1]) in str(e), str(e)
    _counted(True)
    return
  assert not any(p for p, _ in problems)
  for enc in out:
    assert len(enc["prompt"]) + len(enc["response"]) <= max_len and enc["response"][-1] == tokenizer.eos_token_id
  _counted(skips.skipped > 0)


# -- config values ---------------------------------------------------------------------------------------

def _mesh_problem(d: int, f: int, t: int, devices: int = 8) -> bool:
  dims = (d, f, t)
  if dims.count(-1) > 1 or any(x == 0 or x < -1 for x in dims):
    return True
  fixed = math.prod(x for x in dims if x != -1)
  return devices % fixed != 0 if -1 in dims else fixed != devices


@SETTINGS
@given(st.integers(-2, 9), st.integers(-2, 9), st.integers(-2, 9))
def test_mesh_shapes_that_do_not_fit_the_devices_name_config_mesh(d, f, t):
  from xlra.parallel.mesh import make_mesh

  bad = _mesh_problem(d, f, t)
  try:
    mesh = make_mesh({"data": d, "fsdp": f, "tensor": t})
  except ValueError as e:
    assert bad and "config.mesh" in str(e)
    _counted(True)
    return
  assert not bad and mesh.devices.size == 8


LOOP_INTS = {"batch_size": st.integers(-2, 40), "eval_batch_size": st.integers(-2, 40),
             "num_microbatches": st.integers(-1, 5), "log_every": st.integers(-1, 3), "keep_checkpoints": st.integers(-1, 3),
             "eval_every": st.integers(-2, 3), "checkpoint_every": st.integers(-2, 3), "num_steps": st.integers(-3, 5),
             "spike_warmup": st.integers(-2, 3)}


def _loop_problems(c: dict, shards: int) -> set[str]:
  """Oracle for xlra.train.loop.validate: the fields that make a config unusable on `shards` batch shards."""
  bad = {k for k in ("batch_size", "eval_batch_size", "num_microbatches", "log_every", "keep_checkpoints") if c[k] < 1}
  bad |= {k for k in ("eval_every", "checkpoint_every", "num_steps", "spike_warmup") if c[k] < 0}
  if c["spike_factor"] != 0 and not c["spike_factor"] > 1:
    bad.add("spike_factor")
  if c["spike_action"] not in ("warn", "stop"):
    bad.add("spike_action")
  if c["batch_size"] >= 1 and c["batch_size"] % shards:
    bad.add("batch_size")
  if c["eval_batch_size"] >= 1 and c["eval_batch_size"] % shards:
    bad.add("eval_batch_size")
  if c["batch_size"] >= 1 and c["num_microbatches"] >= 1 and (
      c["batch_size"] % c["num_microbatches"] or (c["batch_size"] // c["num_microbatches"]) % shards):
    bad |= {"batch_size", "num_microbatches"}
  return bad


@SETTINGS
@given(st.fixed_dictionaries({**LOOP_INTS, "spike_factor": st.sampled_from([0.0, 0.5, 1.0, 3.0, -1.0, math.nan]),
                              "spike_action": st.sampled_from(["warn", "stop", "halt"]),
                              "tensor": st.sampled_from([1, 2, 4, 8])}))
def test_training_config_values_are_validated_naming_the_field(values):
  from xlra.parallel.mesh import batch_shards, make_mesh
  from xlra.train import loop

  values = dict(values)
  mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": values.pop("tensor")})  # batch shards 8 / tensor
  config = ml_collections.ConfigDict(values)
  bad = _loop_problems(values, batch_shards(mesh))
  try:
    loop.validate(config, mesh)
  except ValueError as e:
    assert bad, f"rejected a good config: {e}"
    assert any(f"config.{field}" in str(e) for field in bad), (str(e), bad)
    _counted(True)
    return
  assert not bad, f"accepted a config with bad {bad}"


PPO_FIELDS = {"iterations": st.integers(-1, 3), "prompts_per_iteration": st.integers(-1, 17),
              "samples_per_prompt": st.integers(-1, 4), "minibatches": st.integers(-1, 4),
              "epochs": st.integers(-1, 3), "max_new_tokens": st.integers(-1, 8), "eval_every": st.integers(-1, 3),
              "eval_prompts": st.integers(-1, 4), "checkpoint_every": st.integers(-1, 2),
              "keep_checkpoints": st.integers(-1, 2), "temperature": st.sampled_from([0.7, 0.0, -1.0]),
              "estimator": st.sampled_from(["gae", "rloo", "ppo2"]), "value_warmup_iterations": st.integers(-1, 2)}


def _ppo_problems(c: dict, shards: int) -> set[str]:
  """Oracle for the PPO config: every count positive (or non-negative where 0 means off), and one
  minibatch's rows divisible over the batch shards."""
  positive = ("iterations", "prompts_per_iteration", "samples_per_prompt", "minibatches", "epochs", "max_new_tokens",
              "keep_checkpoints")
  bad = {k for k in positive if c[k] < 1}
  bad |= {k for k in ("eval_prompts", "checkpoint_every", "value_warmup_iterations") if c[k] < 0}
  if c["eval_prompts"] > 0 and c["eval_every"] < 1:
    bad.add("eval_every")
  if c["temperature"] <= 0:
    bad.add("temperature")
  if c["estimator"] not in ("gae", "rloo"):
    bad.add("estimator")
  if c["estimator"] == "rloo" and c["samples_per_prompt"] < 2:
    bad.add("samples_per_prompt")
  if c["estimator"] == "rloo" and c["value_warmup_iterations"] > 0:
    bad.add("value_warmup_iterations")
  rows = c["prompts_per_iteration"] * c["samples_per_prompt"]
  if c["minibatches"] >= 1 and rows >= 1 and (rows % c["minibatches"] or (rows // c["minibatches"]) % shards):
    bad |= {"prompts_per_iteration", "samples_per_prompt", "minibatches"}
  return bad


@SETTINGS
@given(st.fixed_dictionaries(PPO_FIELDS))
def test_ppo_config_values_are_validated_naming_the_field(values):
  from xlra.parallel.mesh import batch_shards, make_mesh
  from xlra.train.ppo_loop import check_config

  config = config_module("ppo").get_config("tiny")
  config.update(values)
  mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  bad = _ppo_problems(values, batch_shards(mesh))
  try:
    check_config(config, mesh)
  except ValueError as e:
    assert bad, f"rejected a good config: {e}"
    assert any(f"config.{field}" in str(e) or field in str(e) for field in bad), (str(e), bad)
    _counted(True)
    return
  assert not bad, f"accepted a config with bad {bad}"


@SETTINGS
@given(st.lists(st.sampled_from(["de", "en", "xx", "EN", "english", ""]), min_size=1, max_size=3),
       st.lists(st.sampled_from(["dialog", "summarize", "chat"]), min_size=1, max_size=2),
       st.integers(-2, 3))
def test_data_config_languages_tasks_and_sizes_name_the_field(languages, tasks, rl_size):
  from xlra.data.job import validate

  config = config_module("data").get_config("tiny")
  config.languages, config.tasks = tuple(languages), tuple(tasks)
  config.sizes.rl = rl_size
  bad = set()
  if any(lang not in ("de", "en") for lang in languages):
    bad.add("config.languages")
  if any(t not in ("dialog", "summarize") for t in tasks):
    bad.add("config.tasks")
  if rl_size < 0:
    bad.add("config.sizes.rl")
  try:
    validate(config)
  except ValueError as e:
    assert bad and any(f in str(e) for f in bad), (str(e), bad)
    _counted(True)
    return
  assert not bad


@pytest.fixture(scope="module")
def bundle(shared_data):
  from xlra.data.job import prepare

  from reliability_cli import shared_data_config
  return prepare(shared_data_config(), shared_data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(max_len=st.sampled_from([-1, 0, 1, 8, 64, 208, 400]), batch_size=st.sampled_from([8, 16, 40, 64]),
       languages=st.sampled_from([("en",), ("de",), ("xx",), ("en", "de"), ()]), val_examples=st.sampled_from([8, 48]),
       kind=st.sampled_from(["sft", "rm"]))
def test_job_configs_reach_a_task_or_name_the_field(bundle, max_len, batch_size, languages, val_examples, kind):
  """From a config to the job's Task (model shape, records, encoding, loaders), everything the loop
  gets before compiling: a bad sequence length, language, batch size or hold-out names its field."""
  from xlra.train import jobs

  config = config_module(kind).get_config("ci")
  config.update(dict(max_len=max_len, batch_size=batch_size, languages=languages, val_examples=val_examples))
  try:
    task = (jobs.sft_task if kind == "sft" else jobs.rm_task)(config, bundle)
  except ValueError as e:  # EmptySplitError included
    fields = ("config.max_len", "config.languages", "config.batch_size", "config.val_examples")
    assert any(f in str(e) for f in fields), str(e)
    _counted(True)
    return
  batch = next(task.train_data)
  rows = batch["tokens" if "tokens" in batch else "chosen_tokens"]
  assert rows.shape == (batch_size, max_len) and set(languages) <= {"en"}

"""A truncated or corrupted latest checkpoint: the loop warns, names it, moves it aside and resumes
from the previous one, ending bitwise equal to an uninterrupted run; when none reads back, a clear
error (and nothing is moved)."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest

import reliability_tally as tally
import reliability_toy as toy
from reliability_cli import assert_same_arrays
from xlra.train import checkpoint as ckpt_lib, loop

pytestmark = pytest.mark.usefixtures("in_process_compile_cache")


def _files(step_dir: str) -> list[str]:
  return sorted(os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs)


def _largest(step_dir: str) -> str:
  return max(_files(os.path.join(step_dir, "state")), key=os.path.getsize)


def _truncate_largest(step_dir: str) -> None:
  path = _largest(step_dir)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _garble_largest(step_dir: str) -> None:
  """Same size, random bytes over the second half (a bad sector)."""
  path = _largest(step_dir)
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.seek(size // 2)
    f.write(np.random.default_rng(0).integers(0, 256, size - size // 2, dtype=np.uint8).tobytes())


def _empty_every_file(step_dir: str) -> None:
  for path in _files(step_dir):
    open(path, "wb").close()


def _garbage_metadata(step_dir: str) -> None:
  with open(os.path.join(step_dir, "state", "_METADATA"), "wb") as f:
    f.write(b'{"tree_metadata": {"par')


def _lose_state(step_dir: str) -> None:
  shutil.rmtree(os.path.join(step_dir, "state"))


def _garble_loop_json(step_dir: str) -> None:
  for path in _files(os.path.join(step_dir, "loop")):
    if "commit" not in path:
      with open(path, "wb") as f:
        f.write(b"\x00\xff{")


CORRUPTIONS = {"truncated_array_file": _truncate_largest, "garbled_array_bytes": _garble_largest,
               "every_file_emptied": _empty_every_file, "garbage_metadata": _garbage_metadata,
               "state_directory_lost": _lose_state, "garbled_loop_state": _garble_loop_json}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """An uninterrupted 6-step run, and one stopped after step 4 (checkpoints 2 and 4)."""
  tmp = tmp_path_factory.mktemp("corrupt")
  ref = toy.params_of(loop.train(toy.config(), str(tmp / "ref"), toy.task()))
  with pytest.raises(loop.TrainingInterrupted):
    loop.train(toy.config(), str(tmp / "cut"), toy.task(), should_stop=lambda step: step == 4)
  assert sorted(os.listdir(tmp / "cut" / "checkpoints")) == ["2", "4"]
  return ref, str(tmp / "cut"), tmp


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_latest_checkpoint_falls_back_to_the_previous(runs, kind, caplog):
  ref, cut, tmp = runs
  work = str(tmp / kind)
  shutil.copytree(cut, work)
  CORRUPTIONS[kind](os.path.join(work, "checkpoints", "4"))
  tally.add(corruptions_tried=1)
  caplog.set_level(logging.WARNING)
  result = loop.train(toy.config(), work, toy.task())
  assert_same_arrays(toy.params_of(result), ref, f"resumed past a checkpoint with {kind}")
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  said = [w for w in warnings if "resuming from the previous checkpoint" in w]
  assert said, f"no fallback warning among {warnings}"
  assert os.path.join("checkpoints", "2") in said[0] and "4" in said[0] and "unreadable" in said[0]
  assert os.path.isdir(os.path.join(work, ckpt_lib.CORRUPT, "4"))  # kept for a post-mortem, out of the way
  assert sorted(os.listdir(os.path.join(work, "checkpoints"))) == ["2", "4", "6"]  # 4 saved afresh
  tally.add(corruptions_survived=1)
  tally.note(f"corruption {kind} of checkpoint 4: resumed from 2, bitwise equal")


def test_no_readable_checkpoint_is_a_clear_error_and_moves_nothing(runs):
  _, cut, tmp = runs
  work = str(tmp / "all_bad")
  shutil.copytree(cut, work)
  for step in ("2", "4"):
    _garbage_metadata(os.path.join(work, "checkpoints", step))
  tally.add(corruptions_tried=1)
  with pytest.raises(ckpt_lib.CorruptCheckpointError) as err:
    loop.train(toy.config(), work, toy.task())
  msg = str(err.value)
  assert os.path.join(work, "checkpoints") in msg and "[4, 2]" in msg and "new workdir" in msg
  assert sorted(os.listdir(os.path.join(work, "checkpoints"))) == ["2", "4"]
  assert not os.path.exists(os.path.join(work, ckpt_lib.CORRUPT))
  tally.add(corruptions_survived=1)

"""Data: the embedded multilingual testbed (or real datasets), its splits and the tokenizer.

    xlra data --config=configs/data.py:testbed --workdir=/tmp/xlra_data
    xlra data --config=configs/data.py:tiny --workdir=/tmp/xlra_data_tiny        # seconds; tests
    xlra data --config=configs/data.py:real --workdir=DIR \
        --config.real.seahorse_tsv=.../validation.tsv --config.real.seahorse_articles=.../gem \
        --config.real.oasst_jsonl=.../trees.jsonl --config.tokenizer.path=/path/to/hf_checkpoint

Sizes are per language and per task. Writes DIR/data/ (JSONL splits, the tokenizer, summary.json) and
prints a per-language table; other jobs call `xlra.data.job.prepare(config, workdir)` for the same data.
"""

from __future__ import annotations

import ml_collections

PRESETS = {
    # name: (base docs, sft, rm_train prompts, rm_val prompts, rl prompts, eval prompts, BPE vocab)
    "testbed": (1000, 1000, 1000, 200, 300, 100, 2048),
    "tiny": (40, 24, 24, 12, 8, 8, 512),
}


def get_config(arg: str = "testbed") -> ml_collections.ConfigDict:
  if arg not in (*PRESETS, "real"):
    raise ValueError(f"unknown data preset {arg!r}; known: {', '.join((*PRESETS, 'real'))}")
  c = ml_collections.ConfigDict()
  c.source = "real" if arg == "real" else "testbed"  # testbed | real
  c.seed = 0
  c.languages = ("de", "en", "es", "ru", "tr", "vi")
  c.tasks = ("summarize", "dialog")
  base, sft, rm_train, rm_val, rl, ev, vocab = PRESETS.get(arg, PRESETS["tiny"])
  c.sizes = ml_collections.ConfigDict(dict(base=base, sft=sft, rm_train=rm_train, rm_val=rm_val, rl=rl, eval=ev))

  # Simulated annotators (xlra/data/testbed/annotators.py explains the temperature).
  c.annotator = ml_collections.ConfigDict(dict(
      temperature=0.26, threshold=0.75, pointwise_temperature=0.1, seed=0,
      # Language-specific tastes that the gold quality q does not reward; set to 0 to switch off.
      biases=ml_collections.ConfigDict({"de": {"length": 0.5}, "es": {"polite": 0.2}})))
  c.candidates = ml_collections.ConfigDict(dict(pairs_per_prompt=1, p_clean=0.25, max_corruptions=3))
  # SFT targets: the reference with each flaw applied independently at these rates (about a quarter of
  # the dialog targets stay clean), as real SFT corpora carry rambling, cut-off, repeated, impolite or
  # code-switched answers; the SFT policy then reproduces them at random per sample (at the demo's
  # temperature 0.7, each at about half its rate or less), which is what best-of-n and PPO can remove.
  # Only flaws visible in the answer or against the request (xlra.data.testbed.corruptions.VISIBLE).
  c.sft_flaws = ml_collections.ConfigDict(dict(filler=0.25, repetition=0.15, truncation=0.1, no_end=0.25,
                                               fragment=0.05, impolite=0.3, extra_item=0.25))
  # Base-LM corpus: shares of documents followed by a restatement of their facts (a summary, a reply) or
  # by a translation into another testbed language, and of prompts written with an answer from the flaw
  # mixture (xlra/data/testbed/splits.py:base_corpus).
  c.base_mix = ml_collections.ConfigDict(dict(restatements=0.0, parallel=0.0, answers=0.0))
  c.translation_error_rate = 0.1  # for translate-train / no-target-SFT baselines

  # Testbed: a byte-level BPE trained on the base corpus. Real runs: `path` names the checkpoint's own
  # tokenizer directory (AutoTokenizer), and vocab_size is ignored.
  c.tokenizer = ml_collections.ConfigDict(dict(vocab_size=vocab, min_frequency=2, path=""))

  # Real datasets (source == "real"); empty paths are skipped.
  c.real = ml_collections.ConfigDict(dict(
      seahorse_tsv="", seahorse_articles="",  # articles: a GEM directory (articles_from_dir) or a JSONL of {gem_id, text}
      oasst_jsonl="",  # an oasst1/oasst2 *.trees.jsonl export
      summarization="",  # "de=/data/mlsum/de_train.jsonl,vi=/data/wiki_lingua/vietnamese_vi": JSONL or GEM directories
      summarization_format="auto", max_input_tokens=1024, max_output_tokens=512,
      # The split read from GEM directories (WikiLingua's {split}.src.{lang} files): val | test | train.
      # JSONL files are read whole, so name the split's file in `summarization` itself.
      summarization_split="val"))
  return c

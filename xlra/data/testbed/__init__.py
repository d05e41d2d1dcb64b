"""The embedded multilingual testbed: a seeded synthetic world written in de, en, es, ru, tr and vi, with a
known gold quality, so the whole cross-lingual alignment pipeline runs offline on a CPU and its outcome
can be checked against ground truth.

API (everything deterministic from its seed):

  build(config) -> Testbed                      every split of configs/data.py's `sizes`, in memory
    tb.get(split, lang, task=None) -> [Example]   split in sft | rm_train | rm_val | rl | eval
    tb.get_pairs(split, lang, task=None) -> [dict]   rm_train | rm_val: prompt, chosen, rejected,
                                                  q_chosen, q_rejected, *_kinds, *_spec, example_id
    tb.get_pointwise(split, lang, task=None) -> [dict]   prompt, output, label (bool), q, kinds, spec
    tb.base[lang] -> [str]                        raw documents for the base LM and the tokenizer
    tb.index() -> {id: Example}
  generate_split(lang, task, split, n, seed) -> [Example]
  Example: id, lang, task ('summarize' | 'dialog'), prompt (the full instruction the policy sees, in
           `lang`), reference, facts, distractors, constraints, world; to_dict() / Example.from_dict(d)

  quality(example, output) -> float in [0, 1]   the gold q (fast, total on any string)
  quality_parts(example, output) -> dict        its components

  Annotator(temperature=0.26, threshold=0.75, pointwise_temperature=0.1, biases=DEFAULT_BIASES, seed=0)
  pairwise_preferences(examples, outputs_a, outputs_b, annotator=None) -> [bool]   True: a preferred
  pointwise_labels(examples, outputs, annotator=None) -> [bool]                    True: good
  agreement(annotator, examples, outputs_a, outputs_b) -> {pairs, agreement_with_q, inter_annotator}

  corrupt(example, kind, stream, spec=None) -> spec | None       kinds: KINDS (+ impolite, extra_item)
  sample_candidate(example, stream) -> (text, spec, kinds)
  render(example, spec, lang=None) -> str;  reference_spec(example) -> spec
  translate(example, to_lang, error_rate=0.0, seed=0) -> Example
  translate_candidate(example, spec, to_lang, error_rate=0.0, seed=0) -> str
  translate_pairs(pairs, tb.index(), to_lang, error_rate=0.0, seed=0) -> [dict]   translate-train RM data
  shuffled_labels(records, kind, seed) -> [dict]   the same RM records with labels shuffled (placebo RMs)
  q_variance(examples, samples) -> dict         within-prompt variance of log q split by q's components
  Stream(*key)                                  the named random stream every draw comes from

Modules: langs/ (one per language: lexicon and sentence renderers), world (events and values), tasks
(examples, specs, rendering), quality (q), corruptions, annotators, translate, splits, seeding.
"""

from xlra.data.testbed.annotators import DEFAULT_BIASES, Annotator, agreement, pairwise_preferences, pointwise_labels
from xlra.data.testbed.corruptions import KINDS, corrupt, sample_candidate
from xlra.data.testbed.langs import CODES as LANGUAGES
from xlra.data.testbed.q_variance import q_variance
from xlra.data.testbed.quality import quality, quality_parts
from xlra.data.testbed.seeding import Stream
from xlra.data.testbed.splits import (SPLITS, Testbed, base_corpus, build, generate_split, pointwise_examples,
                                      preference_pairs, probe_pairs, shuffled_labels)
from xlra.data.testbed.tasks import TASKS, Example, reference_spec, render
from xlra.data.testbed.translate import translate, translate_candidate, translate_pairs

__all__ = ["DEFAULT_BIASES", "KINDS", "LANGUAGES", "SPLITS", "TASKS", "Annotator", "Example", "Stream", "Testbed",
           "agreement", "base_corpus", "build", "corrupt", "generate_split", "pairwise_preferences",
           "pointwise_examples", "pointwise_labels", "preference_pairs", "probe_pairs", "q_variance", "quality",
           "quality_parts",
           "reference_spec", "render", "sample_candidate", "shuffled_labels", "translate", "translate_candidate", "translate_pairs"]

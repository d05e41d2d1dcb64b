"""Data: the embedded multilingual testbed, tokenizers, real-dataset loaders and batching.

Entry points for other stages (see each module's docstring):
  xlra.data.job.prepare(config, workdir) -> DataBundle(data_dir, tokenizer, tokenizer_dir, testbed, real, summary)
      the run's data (configs/data.py), built once under WORKDIR/data and read back afterwards; call it on
      one process (or give each host its own workdir) in multi-host runs
  xlra.data.testbed      build, generate_split, quality, annotators, corruptions, translate
  xlra.data.tokenizer    train_bpe, load_tokenizer, encode_prompt, encode_response, decode_response
  xlra.data.batching     encode_records, sft/pairwise/pointwise batches and loaders, generation_batch, Loader
  xlra.data.sources      load_seahorse, load_oasst, load_summarization (real datasets)
Nothing is imported here, so `import xlra.data.testbed` stays light (no transformers).
"""

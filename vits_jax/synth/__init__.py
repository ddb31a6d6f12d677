"""Host programs: validation with named errors, buckets, batches, strategies, files.

    voice.py       Voice: a loaded voice (params, tokenizer, defaults) that speaks
    synthesis.py   synthesize: ids -> waveforms (buckets, per-item CPU strategy, windows, sharding)
    streaming.py   stream: one utterance in exact chunks
    speech.py      speak: text of any length -> one waveform (sentences, batches, pauses)
    timings.py     token / word / sentence times, subtitles
    corpus.py, corpus_manifest.py, corpus_output.py: a manifest of texts -> an audio corpus
    audio.py       WAV / FLAC files    progress.py   the one progress bar
"""

"""The command lines: `python -m kseq.experiments.run`, `python -m kseq.cli.ensemble`,
`python -m kseq.cli.tune` and `python -m kseq.cli.shard`.

Each parses its arguments and checks what it can (names, files, ranges) before TensorFlow loads,
answers bad input with one `error: ...` line and exit code 2 (`common.run_command`), and then
calls the library (`kseq.training`, `kseq.ensemble`, `kseq.tune`, `kseq.data.shards`), which
knows nothing of argument parsing.
"""

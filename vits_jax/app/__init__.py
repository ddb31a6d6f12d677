"""The `vits-jax` command: one module per subcommand, what they share in common.py.

    main.py  the parser and entry point    common.py  errors, Ctrl-C, compilation cache, outputs
    say.py   convert.py   info.py   batch.py   train.py
"""

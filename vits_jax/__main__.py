"""`python -m vits_jax ...` is the `vits-jax` command."""

from .app.main import run

if __name__ == "__main__":
    run()

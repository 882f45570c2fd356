"""`python -m cifarlab ...` (and `torchrun -m cifarlab ...`) run the CLI."""

from cifarlab.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m peftlab.run`: the documented entry point; the command lives in peftlab/cli/run.py."""

from peftlab.cli.run import main

if __name__ == "__main__":
    raise SystemExit(main())

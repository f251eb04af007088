"""`python -m peftlab.report`: the documented entry point; the command lives in peftlab/cli/report.py."""

from peftlab.cli.report import main

if __name__ == "__main__":
    raise SystemExit(main())

"""`peftlab <command> ...`: one console command for every entry point.

  peftlab run EXPERIMENT.yaml [key=value ...]   plan, run what is missing, report   (python -m peftlab.run)
  peftlab report results/<experiment> ...       tables and figures from records      (python -m peftlab.report)
  peftlab export RUN --adapter OUT | --merge OUT  share a run's adapter with its card (python -m peftlab.cli.export)
  peftlab paper                                 the paper from the reports           (python -m peftlab.cli.paper)
  peftlab assets                                the builtin model and data, offline  (python -m peftlab.cli.assets)
  peftlab dashboard results/<experiment>        its Optuna study in optuna-dashboard (python -m peftlab.cli.dashboard)

Each subcommand is the module's own `main`, so `peftlab run --help` and `python -m peftlab.run
--help` say the same. `peftlab EXPERIMENT.yaml` (no subcommand) still means `peftlab run`.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "run": ("peftlab.cli.run", "plan an experiment, run what is missing, write its report"),
    "report": ("peftlab.cli.report", "tables (CSV, Markdown, LaTeX), macros and figures from run records"),
    "export": ("peftlab.cli.export", "a run's adapter with its model card (hub layout, --push), or merged"),
    "paper": ("peftlab.cli.paper", "build the paper from the experiments' reports"),
    "assets": ("peftlab.cli.assets", "check or install the builtin model and data for offline use"),
    "dashboard": ("peftlab.cli.dashboard", "open an experiment's Optuna study in optuna-dashboard (127.0.0.1)"),
}


def usage() -> str:
    lines = ["usage: peftlab <command> [args ...]", "", "commands:"]
    lines += [f"  {name:<8} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "`peftlab <command> --help` for a command's options; `peftlab EXPERIMENT.yaml` is `peftlab run`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command = args[0]
    if command not in COMMANDS:
        if command.endswith((".yaml", ".yml")):  # `peftlab EXPERIMENT.yaml`, as before subcommands existed
            command, args = "run", ["run", *args]
        else:
            print(f"error: unknown command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())

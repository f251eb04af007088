"""`python -m peftlab.cli <command> ...`: the same dispatcher as the `peftlab` console command."""

from peftlab.cli import main

raise SystemExit(main())

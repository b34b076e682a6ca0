"""`python -m maestro_gate.cli`: the same as the `maestro-gate` command."""

from maestro_gate.cli import main

raise SystemExit(main())

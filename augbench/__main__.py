"""`python -m augbench` is the `augbench` command."""

from augbench.cli import main

raise SystemExit(main())

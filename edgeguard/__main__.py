"""``python -m edgeguard`` runs the command-line interface."""
from edgeguard.cli import main

raise SystemExit(main())

"""`python -m relayroom` is the `relayroom` command."""

from relayroom.signaling.cli import main

raise SystemExit(main())

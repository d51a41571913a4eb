"""`python -m relayroom` is the `relayroom` command."""

from relayroom.launcher import main

raise SystemExit(main())

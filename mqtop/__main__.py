"""Allow ``python -m mqtop``."""

from mqtop.cli import main

raise SystemExit(main())

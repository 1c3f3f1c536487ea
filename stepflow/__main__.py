"""Let `python -m stepflow` behave like the `stepflow` command."""

import sys

from stepflow.cli import main

sys.exit(main())

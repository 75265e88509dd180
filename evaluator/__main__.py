"""`python -m evaluator` is the `evaluator` command."""

import sys

from evaluator.cli import main

sys.exit(main())

"""``python -m dcgan.cli``: the ``dcgan`` command without its console script."""

import sys

from dcgan.cli import main

sys.exit(main())

"""``python -m jooci.cli`` (e.g. under ``torchrun``) runs the ``jooci`` command."""

import sys

from jooci.cli import main

sys.exit(main())

"""``python -m rram_lsm``: the ``rram-lsm`` command line."""
import sys

from rram_lsm.launch.cli import main

sys.exit(main())

import sys

from fathom2loom.cli import main

sys.exit(main())

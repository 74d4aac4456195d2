"""`python -m levered_server` = `levered-server`."""

import sys

from levered_server.main import main

sys.exit(main())

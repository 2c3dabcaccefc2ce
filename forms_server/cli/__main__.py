"""`python -m forms_server.cli`: the same tool as `forms-server`."""

import sys

from forms_server.cli.main import main

sys.exit(main())

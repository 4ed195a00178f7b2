import sys

from connector.devstack.cli import main

sys.exit(main())

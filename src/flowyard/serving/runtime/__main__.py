import sys

from flowyard.serving.runtime.server import main

sys.exit(main())
